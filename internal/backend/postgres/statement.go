package postgres

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Statement is one configured query bound to a pool: what the SQL authenticator and
// authorization source (sqlauth, sqlsrc) ask. The pool is the statement's own (Open) or
// shared with other statements (Pool.Bind). It is safe for concurrent use.
type Statement = sqlrows.Statement[*Pool, *Query]

// Open compiles query under o (see CompileQuery) and builds a pool for cfg (see New) to
// run it. Nothing connects until the first question. Close releases the pool.
func Open(ctx context.Context, cfg Config, query string, o placeholder.Options) (*Statement, error) {
	return sqlrows.Open(ctx, cfg, query, o, CompileQuery, New)
}

// Bind binds a compiled query to the pool without handing the pool over (see
// sqlrows.Bind): the statement's Close leaves the pool open.
func (p *Pool) Bind(q *Query) *Statement { return sqlrows.Bind(p, q) }

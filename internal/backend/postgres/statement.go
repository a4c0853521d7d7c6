package postgres

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Statement is one configured query bound to a pool: what the SQL authenticator and
// authorization source (sqlauth, sqlsrc) ask. The pool is the statement's own (Open) or
// shared with other statements (Pool.Bind). It is safe for concurrent use.
type Statement struct {
	pool  *Pool
	query *Query
	owned bool // Close closes the pool
}

// Open compiles query under o (see CompileQuery) and builds a pool for cfg (see New) to
// run it. Nothing connects until the first question. Close releases the pool.
func Open(ctx context.Context, cfg Config, query string, o placeholder.Options) (*Statement, error) {
	q, err := CompileQuery(query, o)
	if err != nil {
		return nil, err
	}
	p, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Statement{pool: p, query: q, owned: true}, nil
}

// Bind binds a compiled query to the pool without handing the pool over: the statement
// shares the pool's connections, its bound on them and its health state with every other
// statement bound to it, and its Close leaves the pool open (whoever built the pool
// closes it, after the statements are done with it).
func (p *Pool) Bind(q *Query) *Statement {
	return &Statement{pool: p, query: q}
}

// Query runs the statement for one client and reads at most maxRows rows, as
// Pool.Query does.
func (s *Statement) Query(ctx context.Context, vals placeholder.Values, maxRows int) (*sqlrows.Rows, error) {
	return s.pool.Query(ctx, s.query, vals, maxRows)
}

// String returns the statement as configured.
func (s *Statement) String() string { return s.query.String() }

// HasVars reports whether the statement uses any placeholder.
func (s *Statement) HasVars() bool { return s.query.HasVars() }

// Target names the server and database for logs: host:port/database, no credentials.
func (s *Statement) Target() string { return s.pool.Target() }

// Pool returns the pool the statement runs on.
func (s *Statement) Pool() *Pool { return s.pool }

// Close closes the pool's connections when the statement owns the pool (Open); a
// statement from Pool.Bind leaves the shared pool open.
func (s *Statement) Close() {
	if s.owned {
		s.pool.Close()
	}
}

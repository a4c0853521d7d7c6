package sqlrows

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Query is what a statement needs of a connector's compiled query (postgres.Query,
// mysql.Query).
type Query interface {
	// String returns the query as configured.
	String() string
	// HasVars reports whether the query uses any placeholder.
	HasVars() bool
}

// Pool is what a statement needs of a connector's pool (postgres.Pool, mysql.Pool),
// running the connector's compiled queries Q.
type Pool[Q Query] interface {
	// Query runs q with its placeholders bound to vals and reads at most maxRows rows.
	Query(ctx context.Context, q Q, vals placeholder.Values, maxRows int) (*Rows, error)
	// Target names the server and database for logs, no credentials.
	Target() string
	// Health returns the pool's health state.
	Health() health.Snapshot
	// Close closes the pool's connections.
	Close()
}

// Statement is one configured query bound to a pool: what the SQL authenticator and
// authorization source (sqlauth, sqlsrc) ask. The pool is the statement's own (Open) or
// shared with other statements (Bind). It is safe for concurrent use when the pool is.
// The connectors name their instance: postgres.Statement, mysql.Statement.
type Statement[P Pool[Q], Q Query] struct {
	pool  P
	query Q
	owned bool // Close closes the pool
}

// Open compiles src with compile under o and builds a pool for cfg with open to run it;
// the statement owns the pool, and its Close releases it. Errors are compile's and
// open's as they return them.
func Open[C any, P Pool[Q], Q Query](ctx context.Context, cfg C, src string, o placeholder.Options,
	compile func(string, placeholder.Options) (Q, error), open func(context.Context, C) (P, error)) (*Statement[P, Q], error) {
	q, err := compile(src, o)
	if err != nil {
		return nil, err
	}
	p, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Statement[P, Q]{pool: p, query: q, owned: true}, nil
}

// Bind binds a compiled query to p without handing the pool over: the statement shares
// the pool's connections, its bound on them and its health state with every other
// statement bound to it, and its Close leaves the pool open (whoever built the pool
// closes it, after the statements are done with it).
func Bind[P Pool[Q], Q Query](p P, q Q) *Statement[P, Q] {
	return &Statement[P, Q]{pool: p, query: q}
}

// Query runs the statement for one client and reads at most maxRows rows, as the pool's
// Query does.
func (s *Statement[P, Q]) Query(ctx context.Context, vals placeholder.Values, maxRows int) (*Rows, error) {
	return s.pool.Query(ctx, s.query, vals, maxRows)
}

// String returns the statement as configured.
func (s *Statement[P, Q]) String() string { return s.query.String() }

// HasVars reports whether the statement uses any placeholder.
func (s *Statement[P, Q]) HasVars() bool { return s.query.HasVars() }

// Target names the server and database for logs, no credentials.
func (s *Statement[P, Q]) Target() string { return s.pool.Target() }

// Health returns the health of the statement's pool.
func (s *Statement[P, Q]) Health() health.Snapshot { return s.pool.Health() }

// Pool returns the pool the statement runs on (for Ping and Health).
func (s *Statement[P, Q]) Pool() P { return s.pool }

// Close closes the pool's connections when the statement owns the pool (Open); a
// statement from Bind leaves the shared pool open.
func (s *Statement[P, Q]) Close() {
	if s.owned {
		s.pool.Close()
	}
}

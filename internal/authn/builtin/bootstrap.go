package builtin

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// maxBootstrapSize bounds the bootstrap file read into memory.
const maxBootstrapSize = 64 << 20

// record is one user of a bootstrap file.
type record struct {
	line      int
	id        string
	password  string // plain
	hash      string // hash: password_hash column
	salt      string // hash: salt column
	superuser bool
}

// The columns of each bootstrap type, as EMQX writes them.
var bootstrapColumns = map[string][]string{
	BootstrapPlain: {"user_id", "password", "is_superuser"},
	BootstrapHash:  {"user_id", "password_hash", "salt", "is_superuser"},
}

// bootstrap inserts the bootstrap file's users that do not exist yet. Every record is
// checked before anything is written; an error names the file and line.
func (a *Authenticator) bootstrap(ctx context.Context) error {
	path := a.cfg.BootstrapFile
	recs, err := readBootstrap(path, a.cfg.BootstrapType)
	if err != nil {
		return fmt.Errorf("built_in_database: bootstrap file %s: %w", path, err)
	}
	var missing []record
	for _, r := range recs {
		if a.get(r.id) == nil {
			missing = append(missing, r)
		}
	}
	users, err := a.bootstrapUsers(ctx, missing)
	if err != nil {
		return fmt.Errorf("built_in_database: bootstrap file %s: %w", path, err)
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	inserted, err := a.users.InsertMissing(ctx, users)
	if err != nil {
		return fmt.Errorf("built_in_database: bootstrap file %s: %w", path, err)
	}
	for i := range inserted {
		a.publish(&inserted[i])
	}
	a.log.Info("bootstrap file loaded", "file", path, "type", a.cfg.BootstrapType, "users", len(recs),
		"inserted", len(inserted), "existing", len(recs)-len(inserted))
	return nil
}

// bootstrapUsers turns records into users: imported hashes are converted, plain
// passwords hashed (in parallel, within the hasher's bound).
func (a *Authenticator) bootstrapUsers(ctx context.Context, recs []record) ([]controldb.User, error) {
	users := make([]controldb.User, len(recs))
	errs := make([]error, len(recs))
	for i, r := range recs {
		users[i] = controldb.User{IDType: a.cfg.UserIDType, ID: r.id, Superuser: r.superuser}
		if a.cfg.BootstrapType == BootstrapHash {
			enc, err := password.FromEMQX(a.cfg.BootstrapHashAlgorithm, r.hash, r.salt)
			if err != nil {
				return nil, fmt.Errorf("line %d: user %q: %w", r.line, r.id, err)
			}
			users[i].PasswordHash = enc
		}
	}
	if a.cfg.BootstrapType == BootstrapPlain {
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(runtime.NumCPU(), max(len(recs), 1)) {
			wg.Go(func() {
				for i := range next {
					errs[i] = a.setCredentials(ctx, &users[i], []byte(recs[i].password))
				}
			})
		}
		for i := range recs {
			next <- i
		}
		close(next)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("line %d: user %q: %w", recs[i].line, recs[i].id, err)
			}
		}
	}
	return users, nil
}

// readBootstrap parses a bootstrap file by its extension: .csv or .json.
func readBootstrap(path, typ string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBootstrapSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBootstrapSize {
		return nil, fmt.Errorf("larger than %d MiB", maxBootstrapSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM some editors write
	var recs []record
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		recs, err = parseCSV(data, typ)
	case ".json":
		recs, err = parseJSON(data, typ)
	default:
		return nil, errors.New("unknown format: the name must end in .csv or .json")
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for _, r := range recs {
		if prev, dup := seen[r.id]; dup {
			return nil, fmt.Errorf("line %d: user %q already on line %d", r.line, r.id, prev)
		}
		seen[r.id] = r.line
	}
	return recs, nil
}

func parseCSV(data []byte, typ string) ([]record, error) {
	want := bootstrapColumns[typ]
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(want)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: header: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if strings.Join(header, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("line 1: header is %q, want %q for bootstrap type %s",
			strings.Join(header, ","), strings.Join(want, ","), typ)
	}
	var recs []record
	for {
		fields, err := r.Read()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			return nil, err
		}
		line, _ := r.FieldPos(0)
		rec := record{line: line, id: fields[0]}
		superCol := fields[len(fields)-1]
		if typ == BootstrapPlain {
			rec.password = fields[1]
		} else {
			rec.hash, rec.salt = fields[1], fields[2]
		}
		if err := rec.finish(strings.TrimSpace(superCol), typ); err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
}

// finish parses is_superuser and checks the required fields.
func (r *record) finish(super, typ string) error {
	if super != "" {
		b, err := strconv.ParseBool(super)
		if err != nil {
			return fmt.Errorf("line %d: is_superuser %q is not true or false", r.line, super)
		}
		r.superuser = b
	}
	return r.check(typ)
}

func (r *record) check(typ string) error {
	switch {
	case r.id == "":
		return fmt.Errorf("line %d: empty user_id", r.line)
	case typ == BootstrapPlain && r.password == "":
		return fmt.Errorf("line %d: user %q: empty password", r.line, r.id)
	case typ == BootstrapHash && r.hash == "":
		return fmt.Errorf("line %d: user %q: empty password_hash", r.line, r.id)
	}
	return nil
}

type jsonPlain struct {
	UserID      *string `json:"user_id"`
	Password    *string `json:"password"`
	IsSuperuser bool    `json:"is_superuser"`
}

type jsonHash struct {
	UserID       *string `json:"user_id"`
	PasswordHash *string `json:"password_hash"`
	Salt         string  `json:"salt"`
	IsSuperuser  bool    `json:"is_superuser"`
}

// parseJSON reads a JSON array of user objects. Errors name the line of the object (or of
// the syntax error).
func parseJSON(data []byte, typ string) ([]record, error) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	jsonErr := func(err error, fallback int) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("line %d: %w", lineAt(se.Offset), err)
		case errors.As(err, &te):
			return fmt.Errorf("line %d: %w", lineAt(te.Offset), err)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return fmt.Errorf("line %d: unexpected end of file", lineAt(int64(len(data))))
		}
		return fmt.Errorf("line %d: %w", fallback, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err, 1)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("line %d: want a JSON array of users", lineAt(dec.InputOffset()))
	}
	var recs []record
	for dec.More() {
		// The object starts after the separators that follow the previous one.
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
			off++
		}
		line := lineAt(off)
		var rec record
		rec.line = line
		if typ == BootstrapPlain {
			var v jsonPlain
			if err := dec.Decode(&v); err != nil {
				return nil, jsonErr(err, line)
			}
			if v.UserID == nil || v.Password == nil {
				return nil, fmt.Errorf("line %d: user_id and password are required", line)
			}
			rec.id, rec.password, rec.superuser = *v.UserID, *v.Password, v.IsSuperuser
		} else {
			var v jsonHash
			if err := dec.Decode(&v); err != nil {
				return nil, jsonErr(err, line)
			}
			if v.UserID == nil || v.PasswordHash == nil {
				return nil, fmt.Errorf("line %d: user_id and password_hash are required", line)
			}
			rec.id, rec.hash, rec.salt, rec.superuser = *v.UserID, *v.PasswordHash, v.Salt, v.IsSuperuser
		}
		if err := rec.check(typ); err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonErr(err, lineAt(dec.InputOffset()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("line %d: data after the array", lineAt(dec.InputOffset()))
	}
	return recs, nil
}

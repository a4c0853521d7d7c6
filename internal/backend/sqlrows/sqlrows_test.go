package sqlrows

import "testing"

func TestColumn(t *testing.T) {
	r := &Rows{Columns: []string{"password_hash", "Salt", "is_superuser"}}
	for name, want := range map[string]int{"password_hash": 0, "SALT": 1, "is_SuperUser": 2, "missing": -1} {
		if got := r.Column(name); got != want {
			t.Errorf("Column(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestReaders(t *testing.T) {
	tests := []struct {
		name   string
		v      any
		text   string
		textOK bool
		truthy bool
		b, bOK bool
	}{
		{"string", "x", "x", true, false, false, false},
		{"bytes true", []byte("TRUE"), "TRUE", true, true, true, true},
		{"text t", " t ", " t ", true, true, true, true},
		{"text yes", "yes", "yes", true, true, false, false},
		{"text on", "On", "On", true, true, false, false},
		{"text 1", []byte("1"), "1", true, true, true, true},
		{"text 0", "0", "0", true, false, false, true},
		{"text f", "F", "F", true, false, false, true},
		{"text 2", "2", "2", true, false, false, false},
		{"bool true", true, "true", true, true, true, true},
		{"bool false", false, "false", true, false, false, true},
		{"int64 1", int64(1), "1", true, true, true, true},
		{"int64 2", int64(2), "2", true, true, false, false},
		{"int64 0", int64(0), "0", true, false, false, true},
		{"int16 -1", int16(-1), "-1", true, true, false, false},
		{"int32 0", int32(0), "0", true, false, false, true},
		{"int8 1", int8(1), "1", true, true, true, true},
		{"uint64 big", uint64(18446744073709551615), "18446744073709551615", true, true, false, false},
		{"uint8 0", uint8(0), "0", true, false, false, true},
		{"int 7", 7, "7", true, true, false, false},
		{"NULL", nil, "", false, false, false, false},
		{"float", 1.0, "", false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, ok := Text(tt.v); s != tt.text || ok != tt.textOK {
				t.Errorf("Text = %q, %v; want %q, %v", s, ok, tt.text, tt.textOK)
			}
			if got := Truthy(tt.v); got != tt.truthy {
				t.Errorf("Truthy = %v, want %v", got, tt.truthy)
			}
			if b, ok := Bool(tt.v); b != tt.b || ok != tt.bOK {
				t.Errorf("Bool = %v, %v; want %v, %v", b, ok, tt.b, tt.bOK)
			}
		})
	}
}

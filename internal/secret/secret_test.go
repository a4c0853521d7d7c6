package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"", ""},
		{"file:/etc/x", ""},
		{"env:MY_SECRET", ""},
		{"hunter2", "a password written in the configuration is refused"},
		{"file:", "needs a path"},
		{"env:", "needs a variable name"},
		{"env:1BAD", "needs a variable name"},
	} {
		err := Check(tc.ref, "password")
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%q) = %v, want %q", tc.ref, err, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	}
	t.Setenv("SECRET_TEST_VALUE", "from-env")
	t.Setenv("SECRET_TEST_EMPTY", "")
	for _, tc := range []struct {
		ref, want, err string
	}{
		{write("a", "s3cret\n"), "s3cret", ""},
		{write("b", "s3cret\r\n"), "s3cret", ""},
		{write("c", "\n"), "", "is empty"},
		{write("d", strings.Repeat("x", MaxFileSize+1)), "", "larger than"},
		{"file:" + filepath.Join(dir, "missing"), "", "secret file"},
		{"env:SECRET_TEST_VALUE", "from-env", ""},
		{"env:SECRET_TEST_EMPTY", "", "not set or empty"},
		{"inline", "", "refused"},
	} {
		got, err := Read(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Read(%q) error %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Read(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

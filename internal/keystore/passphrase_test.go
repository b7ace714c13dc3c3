package keystore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

func TestFromFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr bool
	}{
		{"plain", "s3cret", "s3cret", false},
		{"newline", "s3cret\n", "s3cret", false},
		{"CRLF", "s3cret\r\n", "s3cret", false},
		{"first line only", "s3cret\nsecond line\n", "s3cret", false},
		{"first line only, CRLF", "s3cret\r\nsecond\r\n", "s3cret", false},
		{"spaces kept", "  two words  \n", "  two words  ", false},
		{"lone CR ends the line", "s3cret\rmore", "s3cret", false},
		{"exactly the limit", strings.Repeat("x", keystore.MaxPassphraseFile), strings.Repeat("x", keystore.MaxPassphraseFile), false},
		{"over the limit", strings.Repeat("x", keystore.MaxPassphraseFile+1), "", true},
		{"over the limit, short first line", "short\n" + strings.Repeat("x", keystore.MaxPassphraseFile), "", true},
		{"empty", "", "", true},
		{"empty first line", "\ns3cret\n", "", true},
		{"CRLF only", "\r\n", "", true},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := keystore.FromFile(path)()
			if tt.wantErr {
				if err == nil {
					t.Errorf("FromFile(%q) = %q, want an error", tt.content, got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("FromFile(%q) = %q, %v, want %q", tt.content, got, err, tt.want)
			}
		})
	}
	if _, err := keystore.FromFile(filepath.Join(dir, "missing"))(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FromFile(missing) = %v, want os.ErrNotExist", err)
	}
}

// TestFromFileLazy: the file is read when the passphrase is needed, not
// when the source is made, so an unencrypted key never needs it.
func TestFromFileLazy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pass")
	p := keystore.FromFile(path)
	if err := os.WriteFile(path, []byte("late\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := p(); err != nil || string(got) != "late" {
		t.Errorf("FromFile(written after) = %q, %v, want late", got, err)
	}
	plain, err := keystore.Marshal(ecKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keystore.Parse(plain, keystore.FromFile(filepath.Join(t.TempDir(), "missing"))); err != nil {
		t.Errorf("Parse(plain key, missing passphrase file) = %v, want nil: the file is not needed", err)
	}
}

func TestFromEnv(t *testing.T) {
	const name = "PORTCULLIS_TEST_PASSPHRASE"
	t.Setenv(name, "from env\n")
	if got, err := keystore.FromEnv(name)(); err != nil || string(got) != "from env\n" {
		t.Errorf("FromEnv(set) = %q, %v, want it verbatim", got, err)
	}
	t.Setenv(name, "")
	if got, err := keystore.FromEnv(name)(); err == nil {
		t.Errorf("FromEnv(empty) = %q, want an error", got)
	}
	os.Unsetenv(name)
	_, err := keystore.FromEnv(name)()
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("FromEnv(unset) = %v, want an error naming %s", err, name)
	}
}

func TestOnce(t *testing.T) {
	if keystore.Once(nil) != nil {
		t.Errorf("Once(nil) != nil")
	}
	calls := 0
	p := keystore.Once(func() ([]byte, error) { calls++; return []byte("pw"), nil })
	for i := 0; i < 3; i++ {
		if got, err := p(); err != nil || !bytes.Equal(got, []byte("pw")) {
			t.Fatalf("Once()() = %q, %v", got, err)
		}
	}
	if calls != 1 {
		t.Errorf("Once asked %d times, want 1", calls)
	}
	boom := errors.New("boom")
	p = keystore.Once(func() ([]byte, error) { calls++; return nil, boom })
	p()
	if _, err := p(); !errors.Is(err, boom) || calls != 2 {
		t.Errorf("Once(failing)() = %v after %d calls, want the memoized error after 1", err, calls-1)
	}
}

// TestPromptWithoutTerminal: under go test stdin is not a terminal, so a
// prompt fails at once instead of hanging.
func TestPromptWithoutTerminal(t *testing.T) {
	if _, err := keystore.Prompt("Passphrase", false)(); !errors.Is(err, keystore.ErrNoTerminal) {
		t.Skipf("stdin looks like a terminal (%v)", err)
	}
	if _, err := keystore.Parse(readTestdata(t, "ec-sec1-aes128.pem"), keystore.Prompt("Passphrase", false)); !errors.Is(err, keystore.ErrNoTerminal) {
		t.Errorf("Parse(encrypted, Prompt without terminal) = %v, want ErrNoTerminal", err)
	}
}

// TestSource: a file wins over the environment, the environment over a
// prompt (which fails without a terminal, as under go test).
func TestSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const env = "PORTCULLIS_TEST_SOURCE"
	tests := []struct {
		name    string
		src     keystore.Source
		envVal  string
		want    string
		wantErr error
	}{
		{"file over env", keystore.Source{File: file, Env: env}, "from-env", "from-file", nil},
		{"env", keystore.Source{Env: env}, "from-env", "from-env", nil},
		{"empty env falls to the prompt", keystore.Source{Env: env}, "", "", keystore.ErrNoTerminal},
		{"prompt", keystore.Source{Prompt: "Passphrase"}, "", "", keystore.ErrNoTerminal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.envVal)
			got, err := tt.src.Passphrase()()
			if string(got) != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("%+v.Passphrase()() = %q, %v; want %q, %v", tt.src, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

package tunnel

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"time"
)

// crypto/tls keys session tickets per tls.Config, and a reload builds new
// Configs: without help every SIGHUP would end resumption for the clients
// of every service (the client-mode → server-mode chain resumes 100 % of
// its handshakes otherwise). ticketKeys gives each server-mode service
// keys derived from one random secret of the process and the service's
// name, so they survive reloads; services differ, so a ticket from one is
// not even decrypted by another (access is re-checked on resumption
// anyway, ADR-6). Keys rotate every ticketKeyPeriod; the last
// ticketKeysKept still decrypt, as crypto/tls's own rotation does.
// A restart still ends all tickets: the secret lives only in memory.
const (
	ticketKeyPeriod = 24 * time.Hour
	ticketKeysKept  = 7
)

type ticketKeys struct{ secret [32]byte }

func newTicketKeys() *ticketKeys {
	k := &ticketKeys{}
	rand.Read(k.secret[:]) // never fails (crypto/rand)
	return k
}

// set installs the keys of service name for the period of now on conf.
func (k *ticketKeys) set(conf *tls.Config, name string, now time.Time) {
	conf.SetSessionTicketKeys(k.keys(name, now))
}

// keys are the keys of service name for the period of now, newest first
// (the one new tickets are made with).
func (k *ticketKeys) keys(name string, now time.Time) [][32]byte {
	period := now.Unix() / int64(ticketKeyPeriod/time.Second)
	keys := make([][32]byte, ticketKeysKept)
	for i := range keys {
		info := fmt.Sprintf("portcullis tunnel session ticket key\x00%s\x00%d", name, period-int64(i))
		b, err := hkdf.Key(sha256.New, k.secret[:], nil, info, 32)
		if err != nil {
			panic(err) // only for an impossible length
		}
		copy(keys[i][:], b)
	}
	return keys
}

// rotate installs the keys of service name on conf as each period
// begins, until ctx (the service's life) ends.
func (k *ticketKeys) rotate(ctx context.Context, conf *tls.Config, name string) {
	for {
		now := time.Now()
		next := now.Truncate(ticketKeyPeriod).Add(ticketKeyPeriod)
		t := time.NewTimer(next.Sub(now) + time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		k.set(conf, name, time.Now())
	}
}

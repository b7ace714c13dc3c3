package relay

import (
	"io"
	"net"
	"testing"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (*net.TCPConn, *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		tb.Fatal(a.err)
	}
	tb.Cleanup(func() { d.Close(); a.c.Close() })
	return d.(*net.TCPConn), a.c.(*net.TCPConn)
}

// BenchmarkPipe measures the copy loop between two loopback TCP
// connections, 1 MiB per op: writer → [src] pipe [dst] → reader. The loop
// must not allocate: allocs/op stays at 0 (the pooled buffer is taken once
// per direction, not per op).
func BenchmarkPipe(b *testing.B) {
	const size = 1 << 20
	writer, src := tcpPair(b)
	dst, reader := tcpPair(b)
	piped := make(chan int64, 1)
	go func() {
		n, _ := pipeConns(dst, src)
		piped <- n
	}()
	next := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		var err error
		for range next {
			for sent := 0; sent < size && err == nil; sent += len(chunk) {
				_, err = writer.Write(chunk)
			}
		}
		writer.CloseWrite()
		werr <- err
	}()
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ReportAllocs()
	var ops int64
	for b.Loop() {
		next <- struct{}{}
		if _, err := io.ReadFull(reader, buf); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	close(next)
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
	// pipe half-closes dst when src ends: the reader sees EOF.
	if n, err := reader.Read(buf[:1]); n != 0 || err != io.EOF {
		b.Fatalf("after the writer's FIN: Read() = %d, %v; want EOF", n, err)
	}
	if n := <-piped; n != ops*size {
		b.Fatalf("pipe copied %d bytes, want %d", n, ops*size)
	}
}

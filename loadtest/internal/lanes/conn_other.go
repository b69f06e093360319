//go:build !linux

package lanes

import "net/netip"

// The shared socket needs Linux; elsewhere every call fails.

const MaxBatch, MaxDatagram = 64, 1500

type Conn struct{}

func Listen() (*Conn, error)                                         { return nil, ErrUnsupported }
func (*Conn) Port() uint16                                           { return 0 }
func (*Conn) Close() error                                           { return nil }
func (*Conn) WriteTo(_ []byte, _ netip.Addr, _ netip.AddrPort) error { return ErrUnsupported }
func (*Conn) NewReader(int) (*Reader, error)                         { return nil, ErrUnsupported }
func (*Conn) NewWriter(int) (*Writer, error)                         { return nil, ErrUnsupported }

type Message struct {
	Buf    []byte
	N      int
	Local  netip.Addr
	Remote netip.AddrPort
}

type Reader struct{}

func (*Reader) Read([]Message) (int, error) { return 0, ErrUnsupported }

type Writer struct{}

func (*Writer) Full() bool                             { return true }
func (*Writer) Len() int                               { return 0 }
func (*Writer) Next() []byte                           { return nil }
func (*Writer) Commit(int, netip.Addr, netip.AddrPort) {}
func (*Writer) Flush() error                           { return ErrUnsupported }

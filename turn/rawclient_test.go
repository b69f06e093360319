package turn

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

// rawClient speaks TURN message by message over UDP or TCP, so tests can
// send what a well-behaved client library would not (odd peer address
// encodings) and read the exact error code of every answer.
type rawClient struct {
	t        *testing.T
	conn     net.Conn
	stream   bool // TCP: messages are framed by their length
	username string
	password string
	realm    string
	nonce    string
	buf      []byte
}

// dialRaw connects to the server with REST credentials for identity.
func dialRaw(t *testing.T, network, addr, identity string) *rawClient {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	u, p := Credentials([]byte(testSecret), identity, time.Now().Add(time.Hour))
	return &rawClient{
		t: t, conn: conn, stream: network != "udp" && network != "udp4" && network != "udp6",
		username: u, password: p, buf: make([]byte, 4096),
	}
}

// peerAddr is an XOR-PEER-ADDRESS (RFC 8656 §14.3) encoded as given: an
// IPv4-mapped IPv6 address stays in the IPv6 family, which pion/stun's
// own encoder would turn into IPv4.
type peerAddr struct {
	ip   netip.Addr
	port uint16
}

func (a peerAddr) AddTo(m *stun.Message) error {
	family, ip := uint16(0x02), a.ip.AsSlice()
	if a.ip.Is4() {
		family = 0x01
	}
	v := make([]byte, 4+len(ip))
	binary.BigEndian.PutUint16(v[0:2], family)
	binary.BigEndian.PutUint16(v[2:4], a.port^uint16(magicCookie>>16))
	var x [16]byte
	binary.BigEndian.PutUint32(x[0:4], magicCookie)
	copy(x[4:], m.TransactionID[:])
	for i := range ip {
		v[4+i] = ip[i] ^ x[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func mustPeer(s string) peerAddr {
	ap := netip.MustParseAddrPort(s)
	return peerAddr{ip: ap.Addr(), port: ap.Port()}
}

// send writes one message.
func (c *rawClient) send(m *stun.Message) {
	c.t.Helper()
	if _, err := c.conn.Write(m.Raw); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next STUN message, or nil on timeout.
func (c *rawClient) read(timeout time.Duration) *stun.Message {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var raw []byte
	if c.stream {
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(c.conn, hdr); err != nil {
			if isTimeout(err) {
				return nil
			}
			c.t.Fatalf("read: %v", err)
		}
		n := int(binary.BigEndian.Uint16(hdr[2:4]))
		if hdr[0]&0xc0 == 0 {
			n += 16 // STUN header rest
		} else {
			n = (n + 3) &^ 3 // ChannelData padding on streams (RFC 8656 §12.5)
		}
		raw = make([]byte, 4+n)
		copy(raw, hdr)
		if _, err := io.ReadFull(c.conn, raw[4:]); err != nil {
			c.t.Fatalf("read: %v", err)
		}
	} else {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			if isTimeout(err) {
				return nil
			}
			c.t.Fatalf("read: %v", err)
		}
		raw = append([]byte(nil), c.buf[:n]...)
	}
	if !stun.IsMessage(raw) {
		return c.read(timeout) // ChannelData: not what these tests wait for
	}
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		c.t.Fatalf("decode: %v", err)
	}
	return m
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// request sends an authenticated request and returns its answer and error
// code (0 for success). It learns REALM and NONCE from a 401 or 438 and
// retries, as RFC 8489 §9.2.4 describes, and checks that every answer to
// an authenticated request is signed with the long-term key.
func (c *rawClient) request(method stun.Method, attrs ...stun.Setter) (*stun.Message, int) {
	c.t.Helper()
	for range 3 {
		setters := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
		setters = append(setters, attrs...)
		signed := c.nonce != ""
		if signed {
			setters = append(setters, stun.NewUsername(c.username), stun.NewRealm(c.realm),
				stun.NewNonce(c.nonce), stun.NewLongTermIntegrity(c.username, c.realm, c.password))
		}
		setters = append(setters, stun.Fingerprint)
		req := stun.MustBuild(setters...)
		c.send(req)
		var resp *stun.Message
		for resp == nil || resp.TransactionID != req.TransactionID {
			if resp = c.read(2 * time.Second); resp == nil {
				c.t.Fatalf("%v: no answer", method)
			}
		}
		var code stun.ErrorCodeAttribute
		if resp.Type.Class == stun.ClassSuccessResponse {
			code.Code = 0
		} else if err := code.GetFrom(resp); err != nil {
			c.t.Fatalf("%v: error response without ERROR-CODE", method)
		}
		if code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce {
			var nonce stun.Nonce
			var realm stun.Realm
			if nonce.GetFrom(resp) == nil && realm.GetFrom(resp) == nil && (!signed || code.Code == stun.CodeStaleNonce) {
				c.nonce, c.realm = nonce.String(), realm.String()
				continue
			}
		}
		if signed && resp.Contains(stun.AttrMessageIntegrity) {
			key := pionturn.GenerateAuthKey(c.username, c.realm, c.password)
			if err := stun.MessageIntegrity(key).Check(resp); err != nil {
				c.t.Fatalf("%v: answer's MESSAGE-INTEGRITY does not verify: %v", method, err)
			}
		}
		return resp, int(code.Code)
	}
	c.t.Fatalf("%v: authentication did not converge", method)
	return nil, 0
}

// allocate makes an allocation with the given REQUESTED-TRANSPORT and
// returns its relayed address.
func (c *rawClient) allocate(transport byte) netip.AddrPort {
	c.t.Helper()
	resp, code := c.request(stun.MethodAllocate, rawAttr{stun.AttrRequestedTransport, []byte{transport, 0, 0, 0}})
	if code != 0 {
		c.t.Fatalf("allocate: error %d", code)
	}
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatalf("allocate: %v", err)
	}
	a, _ := netip.AddrFromSlice(relayed.IP)
	return netip.AddrPortFrom(a.Unmap(), uint16(relayed.Port))
}

const (
	magicCookie = 0x2112A442 // RFC 8489 §5
	protoUDP    = 17
	protoTCP    = 6
)

// rawAttr adds an attribute with the given bytes.
type rawAttr struct {
	typ stun.AttrType
	v   []byte
}

func (a rawAttr) AddTo(m *stun.Message) error {
	m.Add(a.typ, a.v)
	return nil
}

// sendIndication sends data to peer with a Send indication (RFC 8656 §11.1).
func (c *rawClient) sendIndication(peer stun.Setter, data []byte) {
	c.t.Helper()
	c.send(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peer, rawAttr{stun.AttrData, data}, stun.Fingerprint))
}

// channelNumber is a CHANNEL-NUMBER attribute (RFC 8656 §14.1).
func channelNumber(n uint16) stun.Setter {
	return rawAttr{stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0}}
}

// channelData frames data for channel n (RFC 8656 §12.4), padded for
// streams.
func channelData(n uint16, data []byte, stream bool) []byte {
	size := len(data)
	if stream {
		size = (size + 3) &^ 3
	}
	b := make([]byte, 4+size)
	binary.BigEndian.PutUint16(b[0:2], n)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(data)))
	copy(b[4:], data)
	return b
}

// udpPeer is a UDP socket standing for a peer; it reports what reaches it.
type udpPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newUDPPeer(t *testing.T, network, addr string) *udpPeer {
	t.Helper()
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, la)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &udpPeer{t: t, conn: c}
}

func (p *udpPeer) addrPort() netip.AddrPort {
	return p.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// receive returns the next datagram within timeout, or nil.
func (p *udpPeer) receive(timeout time.Duration) ([]byte, *net.UDPAddr) {
	buf := make([]byte, 2048)
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		if !isTimeout(err) {
			p.t.Fatalf("peer read: %v", err)
		}
		return nil, nil
	}
	return buf[:n], from
}

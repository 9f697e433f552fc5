package testutil

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"golang.org/x/net/dns/dnsmessage"
)

// Resolver returns a *net.Resolver that answers from records alone: a name
// maps to its addresses (A and AAAA answers), a name that is absent does
// not exist (NXDOMAIN). No packet leaves the process: the resolver's "DNS
// server" is a goroutine at the other end of an in-memory pipe. Names in
// /etc/hosts are still answered from there first, as the Go resolver does.
// Queries counts the questions asked.
func Resolver(records map[string][]netip.Addr, queries *atomic.Int64) *net.Resolver {
	norm := make(map[string][]netip.Addr, len(records))
	for name, addrs := range records {
		norm[strings.ToLower(strings.TrimSuffix(name, "."))] = addrs
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go serveDNS(server, norm, queries)
			return client, nil
		},
	}
}

// serveDNS answers length-prefixed DNS messages (the stream framing the Go
// resolver uses on a connection that is not a PacketConn) until the
// resolver closes its end.
func serveDNS(c net.Conn, records map[string][]netip.Addr, queries *atomic.Int64) {
	defer c.Close()
	for {
		var lenBuf [2]byte
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(msg)
		if err != nil {
			return
		}
		q, err := p.Question()
		if err != nil {
			return
		}
		if queries != nil {
			queries.Add(1)
		}
		name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
		addrs, ok := records[name]
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true})
		if !ok {
			b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError})
		}
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		for _, a := range addrs {
			switch {
			case q.Type == dnsmessage.TypeA && a.Is4():
				b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
		out, err := b.Finish()
		if err != nil {
			return
		}
		binary.BigEndian.PutUint16(lenBuf[:], uint16(len(out)))
		if _, err := c.Write(append(lenBuf[:], out...)); err != nil {
			return
		}
	}
}

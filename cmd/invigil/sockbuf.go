package main

import (
	"log/slog"
	"net"
	"syscall"
)

// defaultUDPBuffer is the receive and send buffer asked for on the shared
// RTC UDP socket. Every student's packets arrive on that one socket; with
// Linux's default (~208 KiB) a scheduling pause of a few milliseconds at
// a few hundred students overflows it and the kernel drops packets before
// the SFU sees them (UDP RcvbufErrors). 4 MiB rides out ~200 ms at 500
// students.
const defaultUDPBuffer = 4 << 20

// setUDPBuffers asks for size-byte socket buffers and warns when the
// kernel grants less (its net.core.rmem_max / wmem_max cap what an
// unprivileged process gets).
func setUDPBuffers(conn *net.UDPConn, size int, log *slog.Logger) {
	if size <= 0 {
		return
	}
	if err := conn.SetReadBuffer(size); err != nil {
		log.Warn("rtc udp receive buffer not set", "bytes", size, "err", err)
	}
	if err := conn.SetWriteBuffer(size); err != nil {
		log.Warn("rtc udp send buffer not set", "bytes", size, "err", err)
	}
	rcv, snd := sockopt(conn, syscall.SO_RCVBUF), sockopt(conn, syscall.SO_SNDBUF)
	// Linux reports twice what it granted (the doubling covers its own
	// bookkeeping); half of that is what the request is compared with.
	if rcv >= 0 && rcv/2 < size {
		log.Warn("rtc udp receive buffer smaller than asked: packets may be dropped under load; raise net.core.rmem_max",
			"asked_bytes", size, "granted_bytes", rcv/2)
	}
	if snd >= 0 && snd/2 < size {
		log.Warn("rtc udp send buffer smaller than asked; raise net.core.wmem_max", "asked_bytes", size, "granted_bytes", snd/2)
	}
}

// sockopt reads an integer SOL_SOCKET option, -1 if it cannot.
func sockopt(conn *net.UDPConn, opt int) int {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1
	}
	v := -1
	if cerr := raw.Control(func(fd uintptr) {
		if got, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt); err == nil {
			v = got
		}
	}); cerr != nil {
		return -1
	}
	return v
}

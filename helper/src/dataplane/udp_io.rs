//! The real UDP socket, through quinn-udp: recvmmsg with GRO in, sendmsg with GSO out. It is non-blocking: the
//! engine's threads read until it is empty and then wait for it with the datapath's [`Stop`].

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;

use quinn_udp::{Transmit, UdpSocketState};

use super::engine::UDP_SLOTS;
use super::io::{IDLE_AFTER, Read, RecvMeta, UdpReader, UdpWriter};
use super::wait::{Stop, Wake};

/// Socket buffers large enough for bursts at several Gbit/s (wireguard-go f26efb6 measured the gain).
const SOCKET_BUFFER_BYTES: usize = 7 << 20;

#[derive(Debug)]
pub struct Socket {
    sock: UdpSocket,
    state: UdpSocketState,
    /// A dual-stack socket needs IPv4 destinations written as IPv4-mapped IPv6 addresses.
    dual_stack: bool,
}

/// Binds the tunnel's socket on `port` (0: any free port): IPv4 only when every peer is IPv4, else dual-stack.
/// `fwmark` marks every packet the socket sends, for policy routing.
pub fn bind(port: u16, ipv6_needed: bool, fwmark: Option<u32>) -> io::Result<Arc<Socket>> {
    let addr = if ipv6_needed {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
    };
    let sock = bind_std(addr, fwmark)?;
    let state = UdpSocketState::new((&sock).into())?;
    for result in [
        state.set_send_buffer_size((&sock).into(), SOCKET_BUFFER_BYTES),
        state.set_recv_buffer_size((&sock).into(), SOCKET_BUFFER_BYTES),
    ] {
        if let Err(e) = result {
            tracing::debug!("could not enlarge the UDP socket buffers: {e}");
        }
    }
    Ok(Arc::new(Socket { sock, state, dual_stack: ipv6_needed }))
}

fn bind_std(addr: SocketAddr, fwmark: Option<u32>) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket as RawSocket, Type};
    let sock = RawSocket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // The system's IPV6_V6ONLY default may be on; a dual-stack socket needs it off before bind().
    if addr.is_ipv6() {
        sock.set_only_v6(false)?;
    }
    if let Some(mark) = fwmark {
        sock.set_mark(mark)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

impl Socket {
    pub fn local_port(&self) -> io::Result<u16> {
        Ok(self.sock.local_addr()?.port())
    }

    /// Marks what the socket sends from now on (0: no mark), for policy routing.
    pub fn set_mark(&self, mark: u32) -> io::Result<()> {
        socket2::SockRef::from(&self.sock).set_mark(mark)
    }

    /// Whether the socket reaches IPv6 peers too.
    pub fn dual_stack(&self) -> bool {
        self.dual_stack
    }
}

/// The receiving side of a socket, for one thread.
#[derive(Debug)]
pub struct SocketReader {
    socket: Arc<Socket>,
    stop: Arc<Stop>,
    /// Something was read since the reader last said [`Read::Idle`].
    busy: bool,
}

/// A sending side of a socket, for one thread (several may send on one socket).
#[derive(Debug)]
pub struct SocketWriter {
    socket: Arc<Socket>,
    stop: Arc<Stop>,
}

impl SocketReader {
    pub fn new(socket: Arc<Socket>, stop: Arc<Stop>) -> Self {
        Self { socket, stop, busy: false }
    }
}

impl SocketWriter {
    pub fn new(socket: Arc<Socket>, stop: Arc<Stop>) -> Self {
        Self { socket, stop }
    }
}

impl UdpReader for SocketReader {
    fn recv(&mut self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<Read> {
        let s = &*self.socket;
        let n = bufs.len().min(meta.len()).min(UDP_SLOTS);
        let mut slots = bufs.iter_mut();
        let mut iovs: [IoSliceMut<'_>; UDP_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(slots.next().map_or(&mut [][..], |b| &mut b[..])));
        loop {
            if self.stop.stopping() {
                return Ok(Read::Stop);
            }
            match s.state.recv((&s.sock).into(), &mut iovs[..n], &mut meta[..n]) {
                Ok(n) => {
                    self.busy = true;
                    return Ok(Read::Packets(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.stop.wait_readable(s.sock.as_fd(), self.busy.then_some(IDLE_AFTER))? {
                        Wake::Ready => {}
                        Wake::Stop => return Ok(Read::Stop),
                        Wake::Timeout => {
                            self.busy = false;
                            return Ok(Read::Idle);
                        }
                    }
                }
                // An ICMP error queued for an earlier send is reported on a later receive: not fatal.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::HostUnreachable | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_ready(&mut self) -> io::Result<bool> {
        Ok(self.stop.wait_readable(self.socket.sock.as_fd(), None)? == Wake::Ready)
    }
}

impl UdpWriter for SocketWriter {
    fn max_segments(&self) -> usize {
        self.socket.state.max_gso_segments()
    }

    fn send(&mut self, to: SocketAddr, from: Option<IpAddr>, contents: &[u8], segment_size: usize) -> io::Result<()> {
        let s = &*self.socket;
        let destination = match (s.dual_stack, to.ip()) {
            (true, IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port()),
            _ => to,
        };
        let segment_size = (contents.len() > segment_size).then_some(segment_size);
        // A source of the other family than the peer's cannot be sent from.
        let mut from = from.filter(|f| f.is_ipv4() == to.is_ipv4());
        loop {
            let sent = match from {
                Some(src) => match sourced::send(&s.sock, destination, src, contents, segment_size) {
                    // The host no longer has that address (IPv4 says ENETUNREACH, IPv6 EINVAL): send from the
                    // one routing picks, as WireGuard does. The peer's datagrams then come to that one.
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENETUNREACH | libc::EADDRNOTAVAIL)) =>
                    {
                        from = None;
                        continue;
                    }
                    sent => sent,
                },
                None => {
                    let transmit = Transmit { destination, ecn: None, contents, segment_size, src_ip: None };
                    s.state.try_send((&s.sock).into(), &transmit)
                }
            };
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.stop.wait(s.sock.as_fd(), true)? {
                        return Err(io::Error::other("the tunnel is stopping"));
                    }
                }
                result => return result,
            }
        }
    }
}

/// Sends with a chosen source address, through a sendmsg of its own rather than quinn-udp's: quinn-udp takes any
/// EINVAL from sendmsg for a device without segmentation offload and turns GSO off on the socket for good, and
/// EINVAL is also what the kernel answers for an IPv6 source address the host no longer has.
mod sourced {
    use std::io;
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    /// Room for one packet-info message (the IPv6 one is the larger) and one segment size, aligned for cmsghdr.
    #[repr(C, align(8))]
    struct Control([u8; 64]);

    #[allow(unsafe_code)]
    pub fn send(
        sock: &UdpSocket,
        to: SocketAddr,
        from: IpAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let addr = socket2::SockAddr::from(to);
        let mut iov = libc::iovec { iov_base: contents.as_ptr().cast_mut().cast(), iov_len: contents.len() };
        let mut control = Control([0; 64]);
        // SAFETY: an all-zero msghdr is a valid empty one; every pointer set below outlives the sendmsg call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_ptr().cast_mut().cast();
        msg.msg_namelen = addr.len();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        let mut used = 0;
        // SAFETY: the control buffer is aligned and large enough for both messages (CMSG_SPACE of 20 and of 2
        // bytes: 40 and 24 on 64-bit Linux); CMSG_FIRSTHDR and CMSG_NXTHDR stay inside msg_controllen, and each
        // message's data is written unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            match from {
                IpAddr::V4(v4) => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    used += put(cmsg, libc::IPPROTO_IP, libc::IP_PKTINFO, info);
                }
                IpAddr::V6(v6) => {
                    let info =
                        libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: v6.octets() }, ipi6_ifindex: 0 };
                    used += put(cmsg, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info);
                }
            }
            if let Some(size) = segment_size {
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
                used += put(cmsg, libc::SOL_UDP, libc::UDP_SEGMENT, u16::try_from(size).unwrap_or(u16::MAX));
            }
        }
        msg.msg_controllen = used;
        loop {
            // SAFETY: msg and everything it points to are valid for the call.
            let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Writes one control message of `level`/`kind` holding `data` at `cmsg`; its space in the buffer.
    ///
    /// # Safety
    /// `cmsg` must point into a control buffer with room for `CMSG_SPACE(size_of::<T>())` bytes.
    #[allow(unsafe_code)]
    unsafe fn put<T>(cmsg: *mut libc::cmsghdr, level: libc::c_int, kind: libc::c_int, data: T) -> usize {
        let len = std::mem::size_of::<T>() as libc::c_uint;
        // SAFETY: as the caller promises.
        unsafe {
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<T>(), data);
            libc::CMSG_SPACE(len) as usize
        }
    }
}

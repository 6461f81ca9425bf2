//! Gratuitous ARP and unsolicited Neighbor Advertisements, as Octavia's agent sends them
//! (`amphorae/backends/utils/ip_advertisement.py`): once an address is up here, neighbours
//! still holding another MAC for it (a failed amphora's) move to this interface's.
//! Pure functions build the packets; sending is best effort and only logged.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::{logs, netns, system};

pub type MacAddr = [u8; 6];

/// How long an announcement waits for an interface that is coming up.
const READY_WAIT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(20);

const BROADCAST: MacAddr = [0xff; 6];
const ETH_P_ARP: u16 = 0x0806;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 type Neighbor Advertisement.
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Router and Override, as Octavia's agent sets them (0xa0000000).
const NA_FLAGS: [u8; 4] = [0xa0, 0, 0, 0];
/// Neighbor Discovery option: target link-layer address, 1 unit of 8 bytes.
const TARGET_LL_OPTION: [u8; 2] = [2, 1];

/// An Ethernet broadcast ARP request with sender and target IP both `ip` and sender `mac`.
pub fn garp_frame(mac: MacAddr, ip: Ipv4Addr) -> [u8; 42] {
    // Hardware Ethernet, protocol IPv4, lengths 6 and 4, opcode request.
    const ARP_HEADER: [u8; 8] = [0, 1, 8, 0, 6, 4, 0, 1];
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..22].copy_from_slice(&ARP_HEADER);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // Octavia's agent (like arping) puts the broadcast address in the target MAC.
    f[32..38].copy_from_slice(&BROADCAST);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// The ICMPv6 part of an unsolicited Neighbor Advertisement for `ip` owned by `mac`. The
/// checksum is left zero: the kernel fills it in on a raw ICMPv6 socket (RFC 3542, 3.1).
pub fn na_message(mac: MacAddr, ip: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = NEIGHBOR_ADVERTISEMENT;
    m[4..8].copy_from_slice(&NA_FLAGS);
    m[8..24].copy_from_slice(&ip.octets());
    m[24..26].copy_from_slice(&TARGET_LL_OPTION);
    m[26..32].copy_from_slice(&mac);
    m
}

/// The addresses a HAProxy config's `bind` lines listen on, each once, in order. Wildcards,
/// loopback, unix and abstract sockets and file descriptors are left out.
pub fn bind_addresses(config: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in config.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("bind") {
            continue;
        }
        // HAProxy takes the whole address list as one word, commas between addresses.
        let Some(list) = words.next() else {
            continue;
        };
        for ip in list.trim_matches('"').split(',').filter_map(bind_ip) {
            if !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

/// The IP of one `[family@]address:port` of a bind line, if it names one to announce.
fn bind_ip(spec: &str) -> Option<IpAddr> {
    let rest = match spec.split_once('@') {
        Some(("ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6" | "quic4" | "quic6", rest)) => rest,
        Some(_) => return None,
        None => spec,
    };
    let host = match rest.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']')?.0,
        // The port follows the last colon, also after a bare IPv6 address (Octavia's form).
        None => rest.rsplit_once(':').map_or(rest, |(host, _)| host),
    };
    let ip: IpAddr = host.parse().ok()?;
    (!ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast()).then_some(ip)
}

/// Announces each address a HAProxy config binds.
pub fn config_vips(config: &str) {
    addresses(bind_addresses(config));
}

/// Announces each address on the interface holding it where the ports live (the tenant
/// namespace, or the agent's own); addresses no interface holds (not plugged, or held by
/// keepalived on the other amphora) are skipped.
pub fn addresses(ips: Vec<IpAddr>) {
    if ips.is_empty() {
        return;
    }
    where_ports_live(move || {
        // Read in the namespace this runs in (getifaddrs asks the calling thread's).
        let held = system::addresses();
        for ip in ips {
            match held.iter().find(|a| a.ip == ip) {
                Some(a) => announce(&a.interface, ip),
                None => logs::debug(&format!("not announcing {ip}: no interface holds it")),
            }
        }
    });
}

/// Runs `f` in the tenant namespace when there is one, on a thread of its own that enters it
/// (a thread's namespace is its own; the API's workers stay where they are), else here.
fn where_ports_live(f: impl FnOnce() + Send + 'static) {
    let Some(ns) = netns::tenant() else {
        return f();
    };
    let path = Path::new("/run/netns").join(ns);
    let spawned = thread::Builder::new()
        .name("announce".into())
        .spawn(move || match enter(&path) {
            Ok(()) => f(),
            Err(e) => logs::warn(&format!("not announcing: {}: {e}", path.display())),
        });
    match spawned.map(|t| t.join()) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => logs::error("announcing addresses failed"),
        Err(e) => logs::warn(&format!("not announcing: no thread: {e}")),
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns on a descriptor held open for the call; it changes this thread only.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One gratuitous ARP (IPv4) or unsolicited Neighbor Advertisement (IPv6) for `ip` on `dev`;
/// a failure is logged, never passed on: the address works without it, only later.
fn announce(dev: &str, ip: IpAddr) {
    match send_when_ready(dev, ip, Instant::now() + READY_WAIT) {
        Ok(()) => logs::info(&format!("announced {ip} on {dev}")),
        Err(e) => logs::warn(&format!("could not announce {ip} on {dev}: {e}")),
    }
}

/// An interface just brought up (by a plug) drops frames until the kernel has seen its
/// carrier, and has no IPv6 multicast route until a moment later: both come within
/// milliseconds, so the send is retried until `deadline`.
fn send_when_ready(dev: &str, ip: IpAddr, deadline: Instant) -> io::Result<()> {
    loop {
        let tried = match link(dev)? {
            Link::Down => return Err(io::Error::other("interface down")),
            Link::NoCarrier => Err(io::Error::from_raw_os_error(libc::ENETDOWN)),
            Link::Running => match ip {
                IpAddr::V4(v4) => send_garp(dev, v4),
                IpAddr::V6(v6) => send_na(dev, v6),
            },
        };
        match tried {
            Err(e) if coming_up(&e) && Instant::now() < deadline => thread::sleep(RETRY),
            done => return done,
        }
    }
}

fn coming_up(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENETDOWN | libc::ENETUNREACH))
}

fn send_garp(dev: &str, ip: Ipv4Addr) -> io::Result<()> {
    // Protocol 0: the socket only sends, so nothing queues up on it.
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    let index = if_index(dev)?;
    let mac = hw_addr(&fd, dev)?;
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut to: libc::sockaddr_ll = unsafe { zeroed() };
    to.sll_family = libc::AF_PACKET as libc::sa_family_t;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = index as libc::c_int;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&BROADCAST);
    send_to(&fd, &garp_frame(mac, ip), &to)
}

fn send_na(dev: &str, ip: Ipv6Addr) -> io::Result<()> {
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    let index = if_index(dev)?;
    let mac = hw_addr(&fd, dev)?;
    set_option(&fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_bytes())?;
    // Receivers drop Neighbor Discovery that did not come with hop limit 255 (RFC 4861, 7.1.2).
    let hops: libc::c_int = 255;
    set_option(
        &fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &hops.to_ne_bytes(),
    )?;
    // The source must be the address itself: binding fails while it is still tentative.
    let from = sockaddr_in6(ip, 0);
    // SAFETY: `from` is a live sockaddr_in6 of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&from as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    send_to(&fd, &na_message(mac, ip), &sockaddr_in6(ALL_NODES, index))
}

fn socket(domain: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory preconditions.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns; OwnedFd closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn if_index(dev: &str) -> io::Result<u32> {
    let name = CString::new(dev).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: name is a live NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// An interface `ioctl` that reads the interface's name from an `ifreq` and answers in it.
fn if_ioctl(fd: &OwnedFd, request: libc::c_ulong, dev: &str) -> io::Result<libc::ifreq> {
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { zeroed() };
    if dev.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (to, from) in req.ifr_name.iter_mut().zip(dev.bytes()) {
        *to = from as libc::c_char;
    }
    // SAFETY: the request reads the NUL-terminated name from and writes into `req`, ours.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

enum Link {
    /// Set down: nothing to wait for.
    Down,
    /// Up, its carrier not seen yet.
    NoCarrier,
    Running,
}

fn link(dev: &str) -> io::Result<Link> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let req = if_ioctl(&fd, libc::SIOCGIFFLAGS, dev)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags.
    let flags = libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags });
    Ok(if flags & libc::IFF_UP == 0 {
        Link::Down
    } else if flags & libc::IFF_RUNNING == 0 {
        Link::NoCarrier
    } else {
        Link::Running
    })
}

/// The interface's Ethernet address; an error for interfaces without one (loopback, tunnels).
fn hw_addr(fd: &OwnedFd, dev: &str) -> io::Result<MacAddr> {
    let req = if_ioctl(fd, libc::SIOCGIFHWADDR, dev)?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds the hardware address.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::other("not an Ethernet interface"));
    }
    let mut mac = [0u8; 6];
    for (to, from) in mac.iter_mut().zip(hw.sa_data) {
        *to = from as u8;
    }
    Ok(mac)
}

fn set_option(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: value is a live buffer of the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr_in6(ip: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = ip.octets();
    sa.sin6_scope_id = scope;
    sa
}

/// The socket addresses `send_to` takes: plain C structs of their own size.
trait SockAddr {}
impl SockAddr for libc::sockaddr_ll {}
impl SockAddr for libc::sockaddr_in6 {}

fn send_to<A: SockAddr>(fd: &OwnedFd, data: &[u8], to: &A) -> io::Result<()> {
    // SAFETY: data and `to` are live for the call, with the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            0,
            (to as *const A).cast(),
            size_of::<A>() as libc::socklen_t,
        )
    };
    match usize::try_from(n) {
        Ok(sent) if sent == data.len() => Ok(()),
        Ok(_) => Err(io::Error::other("packet sent in part")),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];

    #[test]
    fn gratuitous_arp_frame() {
        let f = garp_frame(MAC, "203.0.113.5".parse().unwrap());
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
            0x02, 0x00, 0x5e, 0x00, 0x00, 0x01, // Ethernet source
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4, lengths
            0x00, 0x01,                         // request
            0x02, 0x00, 0x5e, 0x00, 0x00, 0x01, // sender MAC
            203, 0, 113, 5,                     // sender IP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // target MAC
            203, 0, 113, 5,                     // target IP: the same
        ];
        assert_eq!(f, expected);
    }

    #[test]
    fn neighbor_advertisement_message() {
        let m = na_message(MAC, "2001:db8::5".parse().unwrap());
        #[rustfmt::skip]
        let expected: [u8; 32] = [
            136, 0, 0, 0,                       // type, code, checksum (the kernel's)
            0xa0, 0, 0, 0,                      // Router, Override
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, // target
            2, 1,                               // target link-layer address, 8 bytes
            0x02, 0x00, 0x5e, 0x00, 0x00, 0x01,
        ];
        assert_eq!(m, expected);
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn bind_lines() {
        let cfg = "\
global\n    stats socket /run/haproxy.sock mode 0666 level user\n\
frontend a\n    bind 203.0.113.5:80\n    bind 2001:db8::5:80\n\
frontend b\n    bind [2001:db8::6]:443 ssl crt /certs/b.pem alpn h2\n\
  bind ipv6@2001:db8::7:8443,ipv4@203.0.113.8:8443 , 203.0.113.9:1\n\
frontend c\n    bind 203.0.113.5:81-90 # again\n    bind *:80\n    bind :::80\n\
    bind :8080\n    bind 0.0.0.0:80\n    bind 127.0.0.1:9101\n    bind [::1]:80\n\
    bind unix@/run/x.sock\n    bind abns@x\n    bind fd@3\n    bind /run/y.sock\n\
    bind\n    # bind 203.0.113.10:80\n    binds 203.0.113.11:80\n\
    bind \"203.0.113.12:80\"\n    bind tcp4@203.0.113.13:80\n";
        assert_eq!(
            bind_addresses(cfg),
            ips(&[
                "203.0.113.5",
                "2001:db8::5",
                "2001:db8::6",
                "2001:db8::7",
                "203.0.113.8",
                "203.0.113.12",
                "203.0.113.13",
            ])
        );
        assert!(bind_addresses("").is_empty());
    }

    #[test]
    fn what_cannot_be_sent_is_an_error() {
        let v4: Ipv4Addr = "203.0.113.5".parse().unwrap();
        assert!(send_garp("no-such-if", v4).is_err());
        assert!(send_na("no-such-if\0", "2001:db8::5".parse().unwrap()).is_err());
        assert!(send_garp("a-name-far-too-long-for-linux", v4).is_err());
        // No waiting for an interface that does not exist; logged, not raised.
        let past = Instant::now();
        assert!(send_when_ready("no-such-if", IpAddr::V4(v4), past).is_err());
        announce("no-such-if", IpAddr::V4(v4));
        // Loopback has no Ethernet address: refused at once, not waited for.
        let later = Instant::now() + READY_WAIT;
        assert!(send_when_ready("lo", IpAddr::V4(v4), later).is_err());
        assert!(send_when_ready("lo", "2001:db8::5".parse().unwrap(), later).is_err());
        assert!(past.elapsed() < READY_WAIT);
    }
}

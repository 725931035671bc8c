//! The supplementary groups of the process at the other end of a Unix socket (SO_PEERGROUPS, Linux 4.13), as
//! the kernel saw them when it connected. SO_PEERCRED carries only the primary group, and the group database
//! knows only a user's listed memberships: a process given a group as it started (systemd's
//! SupplementaryGroups=, `sg`, setpriv) is a member only here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Linux's NGROUPS_MAX: no process has more.
const MOST: usize = 65_536;
/// Enough for almost every caller in one call; more is asked for when the kernel says so.
const FIRST: usize = 64;

pub fn peer_groups(socket: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; FIRST];
    loop {
        let bytes = groups.len() * size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(bytes).map_err(io::Error::other)?;
        // SAFETY: the buffer is `len` bytes of gid_t that we own, and the kernel writes at most `len` bytes to
        // it and the needed or written size to `len`.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = usize::try_from(len).map_err(io::Error::other)? / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count.min(groups.len()));
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ERANGE) || count <= groups.len() || count > MOST {
            return Err(error);
        }
        groups.resize(count, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_peer_in_this_process_has_this_processs_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let mut seen = peer_groups(a.as_fd()).expect("SO_PEERGROUPS");
        let mut ours: Vec<u32> = nix::unistd::getgroups().expect("getgroups").iter().map(|g| g.as_raw()).collect();
        seen.sort_unstable();
        ours.sort_unstable();
        assert_eq!(seen, ours);
    }
}

//! Where the engine's threads wait: for their device or socket to be ready, or for the datapath to stop.
//!
//! Each direction of a tunnel is a thread of its own that reads and writes with non-blocking calls and sleeps
//! here only when a read found nothing (or a send found the socket full): a busy tunnel keeps reading without
//! sleeping at all, and a packet that arrives wakes the thread that handles it, directly, with no scheduler in
//! between (a tokio task's wakeup went through the runtime's driver and often another worker thread: with one
//! worker instead of two, the udp path gained a fifth, and 15-20 % of the CPU was idle in between).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Ready,
    Timeout,
    Stop,
}

/// Tells a datapath's threads to end, and wakes them wherever they wait.
#[derive(Debug)]
pub struct Stop {
    stopping: AtomicBool,
    event: EventFd,
}

impl Stop {
    pub fn new() -> io::Result<Self> {
        let event = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Self { stopping: AtomicBool::new(false), event })
    }

    /// Asks every thread of the datapath to end; each does after the batch in its hands.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        // The counter only grows: a full one (never, at one write per stop) still leaves it readable.
        let _ = self.event.write(1);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Waits until `fd` is readable (or, with `writable`, writable) or the datapath stops: `false` when it
    /// stops.
    pub fn wait(&self, fd: BorrowedFd<'_>, writable: bool) -> io::Result<bool> {
        let interest = if writable { PollFlags::POLLOUT } else { PollFlags::POLLIN };
        Ok(self.poll_fd(fd, interest, PollTimeout::NONE)? != Wake::Stop)
    }

    /// Waits until `fd` is readable, the datapath stops, or `within` passes.
    pub fn wait_readable(&self, fd: BorrowedFd<'_>, within: Option<Duration>) -> io::Result<Wake> {
        let timeout = within.map_or(PollTimeout::NONE, |d| PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX));
        self.poll_fd(fd, PollFlags::POLLIN, timeout)
    }

    fn poll_fd(&self, fd: BorrowedFd<'_>, interest: PollFlags, timeout: PollTimeout) -> io::Result<Wake> {
        loop {
            if self.stopping() {
                return Ok(Wake::Stop);
            }
            let mut fds = [PollFd::new(self.event.as_fd(), PollFlags::POLLIN), PollFd::new(fd, interest)];
            match poll(&mut fds, timeout) {
                Ok(0) => return Ok(Wake::Timeout),
                Ok(_) if self.stopping() => return Ok(Wake::Stop),
                // Ready, or an error on the fd (POLLERR, POLLHUP) that the next call reports.
                Ok(_) => return Ok(Wake::Ready),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sleeps for `d` unless the datapath stops first: `false` when it stops.
    pub fn sleep(&self, d: Duration) -> io::Result<bool> {
        let timeout = PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX);
        self.poll_stop(timeout)
    }

    /// Waits until the datapath stops.
    pub fn wait_for_stop(&self) -> io::Result<()> {
        while self.poll_stop(PollTimeout::NONE)? {}
        Ok(())
    }

    /// Waits on the stop alone: `false` when it came.
    fn poll_stop(&self, timeout: PollTimeout) -> io::Result<bool> {
        loop {
            if self.stopping() {
                return Ok(false);
            }
            match poll(&mut [PollFd::new(self.event.as_fd(), PollFlags::POLLIN)], timeout) {
                Ok(_) => return Ok(!self.stopping()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_a_waiting_thread_and_every_later_wait_returns_at_once() {
        let stop = std::sync::Arc::new(Stop::new().unwrap());
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.wait(a.as_fd(), false).unwrap())
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.stop();
        assert!(!waiter.join().unwrap(), "the wait did not end with the stop");
        assert!(!stop.sleep(Duration::from_secs(60)).unwrap());
        stop.wait_for_stop().unwrap();
        drop(b);
    }

    #[test]
    fn a_ready_fd_and_a_timeout_end_a_wait_that_goes_on() {
        let stop = Stop::new().unwrap();
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        b.send(b"x").unwrap();
        assert!(stop.wait(a.as_fd(), false).unwrap());
        assert!(stop.wait(a.as_fd(), true).unwrap());
        let started = std::time::Instant::now();
        assert!(stop.sleep(Duration::from_millis(30)).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}

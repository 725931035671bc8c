//! Kernel settings under /proc/sys, read and written as files (no `sysctl` command).

use std::io;
use std::path::PathBuf;

/// `key` is a path under /proc/sys such as `net/ipv4/conf/all/src_valid_mark`; nothing else is accepted.
fn path(key: &str) -> io::Result<PathBuf> {
    if key.is_empty() || key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a sysctl key: {key}")));
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

pub fn read(key: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path(key)?)?.trim().to_owned())
}

pub fn write(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(path(key)?, value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_cannot_leave_proc_sys() {
        for bad in ["", "../etc/passwd", "net//x", "net/./x"] {
            assert!(super::path(bad).is_err(), "{bad}");
        }
        assert!(super::read("kernel/ostype").unwrap().contains("Linux"));
    }
}

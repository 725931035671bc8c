//! Authorization: root, and members of the helper's group, may use it.

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

#[derive(Debug, Clone)]
pub struct Access {
    /// The group's name, as configured, for messages.
    pub group_name: String,
    /// The group's id; `None` when the group does not exist, and only root may use the helper.
    pub gid: Option<u32>,
}

impl Access {
    /// Looks the group up; a missing group is not an error, it means root-only access.
    pub fn for_group(name: &str) -> Self {
        let gid = match Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("cannot look up group {name}: {e}");
                None
            }
        };
        Self { group_name: name.to_owned(), gid }
    }

    /// Whether the caller with these credentials (from SO_PEERCRED, and its supplementary `groups` from
    /// SO_PEERGROUPS) may use the helper: root; or a process that has the helper's group; or a user whose account
    /// is a member of it.
    pub fn allows(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        if uid == 0 {
            return true;
        }
        let Some(group) = self.gid else { return false };
        if gid == group || groups.contains(&group) {
            return true;
        }
        match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(user)) => match std::ffi::CString::new(user.name) {
                Ok(name) => getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(group))),
                Err(_) => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_always_and_strangers_never() {
        let none = Access { group_name: "culvert-no-such-group".into(), gid: None };
        assert!(none.allows(0, 0, &[]));
        assert!(!none.allows(65534, 65534, &[]));
        let some = Access { group_name: "g".into(), gid: Some(4242) };
        assert!(some.allows(65534, 4242, &[]), "a process running with the group is a member");
        assert!(some.allows(65534, 65534, &[7, 4242]), "so is one given the group as a supplementary one");
        assert!(!some.allows(65534, 65534, &[7]));
    }

    #[test]
    fn missing_group_means_root_only() {
        assert_eq!(Access::for_group("culvert-no-such-group-xyz").gid, None);
        assert_eq!(Access::for_group("root").gid, Some(0));
    }
}

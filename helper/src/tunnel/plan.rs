//! The planner: which system objects a tunnel must gain and lose to go from what its record holds to what its
//! new profile needs. Pure: it sees only the two lists. Objects are compared whole (a route is its destination,
//! device, table and next hop, so a route that moves is one removed and one added). Objects the profile does not
//! decide (the link itself, its API socket, DNS) are left to the caller.

use crate::system::Object;

/// The objects to make, in the order the profile needs them, and those to remove, newest first (the reverse of
/// their making, as undo goes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<Object>,
    pub remove: Vec<Object>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Whether an object is one the profile decides: routes, rules and forwarding entries.
pub fn planned(object: &Object) -> bool {
    matches!(object, Object::Route { .. } | Object::Rule(_) | Object::Fdb { .. } | Object::Neighbour { .. })
}

/// The plan from `current` (a record's objects, oldest first) to `desired` (what the profile needs now). Only
/// [`planned`] objects of `current` are considered; `desired` must hold only such objects.
pub fn plan(current: &[Object], desired: &[Object]) -> Plan {
    let current: Vec<&Object> = current.iter().filter(|o| planned(o)).collect();
    let add = desired.iter().filter(|d| !current.contains(d)).cloned().collect();
    let remove = current.iter().rev().filter(|c| !desired.contains(c)).map(|c| (*c).clone()).collect();
    Plan { add, remove }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::netlink::MAIN_TABLE;

    fn route(dst: &str) -> Object {
        Object::Route { dst: dst.parse().unwrap(), dev: "cv0".into(), table: MAIN_TABLE, via: None, onlink: false }
    }

    #[test]
    fn adds_what_is_missing_removes_what_is_not_wanted_and_keeps_the_rest() {
        let link = Object::Link { name: "cv0".into(), kind: "tun".into() };
        let current = [link, route("10.1.0.0/24"), route("10.2.0.0/24"), route("10.3.0.0/24")];
        let desired = [route("10.2.0.0/24"), route("10.4.0.0/24"), route("10.1.0.0/24")];
        let p = plan(&current, &desired);
        assert_eq!(p.add, vec![route("10.4.0.0/24")]);
        assert_eq!(p.remove, vec![route("10.3.0.0/24")]);
        assert!(plan(&current, &current[1..]).is_empty(), "the link is not the planner's");
        // Newest first, as undo goes.
        let p = plan(&current, &[]);
        assert_eq!(p.remove, vec![route("10.3.0.0/24"), route("10.2.0.0/24"), route("10.1.0.0/24")]);
    }

    #[test]
    fn a_route_that_moves_is_one_removed_and_one_added() {
        let mut moved = route("10.1.0.0/24");
        if let Object::Route { via, .. } = &mut moved {
            *via = Some("10.0.0.2".parse().unwrap());
        }
        let p = plan(&[route("10.1.0.0/24")], std::slice::from_ref(&moved));
        assert_eq!((p.add, p.remove), (vec![moved], vec![route("10.1.0.0/24")]));
    }
}

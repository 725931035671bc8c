//! Linux interface names, as the kernel's `dev_valid_name` accepts them (restricted to a portable charset).

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_LEN: usize = 15;

/// Why a string is not an interface name; rendered as the middle of a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNameProblem {
    Empty,
    TooLong(usize),
    BadChar(char),
    Reserved,
}

impl std::fmt::Display for IfNameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong(n) => write!(f, "is {n} bytes long (at most {MAX_LEN})"),
            Self::BadChar(c) => write!(f, "contains {c:?} (only letters, digits, '_', '.' and '-' are allowed)"),
            Self::Reserved => write!(f, "is reserved"),
        }
    }
}

/// Checks `name` against the interface-name rules: 1 to 15 bytes of ASCII letters, digits, `_`, `.` and `-`,
/// and not `.` or `..`.
pub fn check(name: &str) -> Result<(), IfNameProblem> {
    if name.is_empty() {
        return Err(IfNameProblem::Empty);
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(IfNameProblem::BadChar(c));
    }
    if name.len() > MAX_LEN {
        return Err(IfNameProblem::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(IfNameProblem::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for n in ["wg0", "cv-lab", "a.b_c", "x23456789012345"] {
            assert_eq!(check(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(check(""), Err(IfNameProblem::Empty));
        assert_eq!(check("x234567890123456"), Err(IfNameProblem::TooLong(16)));
        assert_eq!(check("a b"), Err(IfNameProblem::BadChar(' ')));
        assert_eq!(check("eth0/1"), Err(IfNameProblem::BadChar('/')));
        assert_eq!(check("é"), Err(IfNameProblem::BadChar('é')));
        assert_eq!(check(".."), Err(IfNameProblem::Reserved));
    }
}

//! Names derived from a verified assertion's identity code by keyed hashes — the audit trail's
//! pseudonym and the consent cache's key — computed on the assertion's first call and remembered
//! with its signature (see `seen`), so the other calls of a citizen's session do not compute the
//! same HMACs again. Holds only the derived values, never the identity code.

use std::sync::{Arc, OnceLock};

/// The derived names of one verified assertion, filled on first use.
#[derive(Default)]
pub struct Derived {
    audit: OnceLock<Option<Arc<str>>>,
    keyed: OnceLock<(u64, [u8; 32])>,
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived(<pseudonyms>)")
    }
}

impl Derived {
    /// The audit pseudonym: `derive`'s answer the first time, the remembered one after.
    pub fn audit_pseudonym(&self, derive: impl FnOnce() -> Option<String>) -> Option<Arc<str>> {
        self.audit.get_or_init(|| derive().map(Arc::from)).clone()
    }

    /// A 32-byte keyed name under the key that `owner` identifies: remembered for the first
    /// owner that asks; any other owner's is derived each time (never another key's value).
    pub fn keyed(&self, owner: u64, derive: impl FnOnce() -> [u8; 32]) -> [u8; 32] {
        match self.keyed.get() {
            Some((o, value)) if *o == owner => *value,
            Some(_) => derive(),
            None => self.keyed.get_or_init(|| (owner, derive())).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_derived_once_per_owner() {
        let d = Derived::default();
        let mut calls = 0;
        for _ in 0..3 {
            let p = d.audit_pseudonym(|| {
                calls += 1;
                Some("p".to_owned())
            });
            assert_eq!(p.as_deref(), Some("p"));
        }
        assert_eq!(calls, 1);
        assert_eq!(d.keyed(1, || [1; 32]), [1; 32]);
        assert_eq!(d.keyed(1, || [9; 32]), [1; 32], "remembered for its owner");
        assert_eq!(
            d.keyed(2, || [2; 32]),
            [2; 32],
            "another key's name is its own"
        );
        assert_eq!(d.keyed(1, || [9; 32]), [1; 32]);
    }
}

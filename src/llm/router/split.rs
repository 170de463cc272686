//! Weighted splits, sticky per session: the target a session's calls try first
//! is drawn from a hash of (tenant, session id, route name), so every turn of a
//! session lands on the same arm, and the arms of two routes are drawn
//! independently (an experiment on one route is not correlated with another's).

use sha2::{Digest, Sha256};

use crate::ids::{SessionId, TenantId};

/// The index of the arm `weights` give this (tenant, session, route); 0 when
/// there are no weights. Weights must not all be 0 (the config checks it).
pub fn arm(weights: &[u32], tenant: &TenantId, session: &SessionId, route: &str) -> usize {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return 0;
    }
    let mut hash = Sha256::new();
    // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    for part in [tenant.as_str(), session.as_str(), route] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut point = u64::from_be_bytes(first) % total;
    for (i, weight) in weights.iter().enumerate() {
        let weight = u64::from(*weight);
        if point < weight {
            return i;
        }
        point -= weight;
    }
    // Unreachable: `point` < the sum of the weights.
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_always_draws_the_same_arm_and_arms_follow_the_weights() {
        let tenant = TenantId::default_tenant();
        let weights = [90, 10];
        let mut counts = [0usize; 2];
        for _ in 0..2000 {
            let session = SessionId::generate();
            let first = arm(&weights, &tenant, &session, "chat");
            assert_eq!(first, arm(&weights, &tenant, &session, "chat"));
            counts[first] += 1;
        }
        // 10% of 2000 is 200; a fair hash lands far inside 100..300.
        assert!((100..300).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn two_routes_draw_independently_and_zero_weights_are_never_drawn() {
        let tenant = TenantId::default_tenant();
        let mut same = 0;
        for _ in 0..1000 {
            let session = SessionId::generate();
            let a = arm(&[50, 50], &tenant, &session, "a");
            let b = arm(&[50, 50], &tenant, &session, "b");
            same += usize::from(a == b);
            assert_eq!(arm(&[0, 7], &tenant, &session, "a"), 1);
        }
        // Independent draws agree about half the time; correlated ones always.
        assert!((350..650).contains(&same), "{same}");
        assert_eq!(arm(&[], &tenant, &SessionId::generate(), "a"), 0);
    }
}

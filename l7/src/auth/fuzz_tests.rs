//! Whatever arrives as a token, verification answers a [`Reason`] and never
//! panics (house rule 6): arbitrary text, and mutations of a valid token.

use proptest::prelude::*;

use super::vectors::{hs256_case, mutate_check};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(token in "\\PC{0,300}") {
        let _ = hs256_case(&token);
    }

    #[test]
    fn arbitrary_dotted_base64_never_panics(parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,80}", 0..5)) {
        let _ = hs256_case(&parts.join("."));
    }

    #[test]
    fn mutated_valid_tokens_are_refused_or_unchanged(pos in 0usize..200, byte in any::<u8>()) {
        mutate_check(pos, byte);
    }
}

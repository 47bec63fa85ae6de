//! Fuzzes the identity-code parser (`ikkuna-hetu`): whatever the bytes, parsing never panics; a
//! parsed code round-trips exactly (the crate never normalises) and rebuilds from its parts with
//! `compose`; `Debug` never shows the code; an error's text is one of the fixed messages, so it
//! cannot echo the input. The first bytes also drive `compose` with arbitrary parts.
#![no_main]

use ikkuna_hetu::{IdentityCode, IdentityCodeError};
use libfuzzer_sys::fuzz_target;

/// Every error the parser can give; their texts carry no input.
const ERRORS: [IdentityCodeError; 6] = [
    IdentityCodeError::Length,
    IdentityCodeError::DateDigits,
    IdentityCodeError::CenturySign,
    IdentityCodeError::Date,
    IdentityCodeError::IndividualNumber,
    IdentityCodeError::CheckCharacter,
];

fuzz_target!(|data: &[u8]| {
    compose_from(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match IdentityCode::parse(input) {
        Ok(code) => {
            assert_eq!(code.reveal(), input, "a parsed code is kept as written");
            assert_eq!(IdentityCode::parse(code.reveal()), Ok(code.clone()));
            assert_eq!(input.parse::<IdentityCode>(), Ok(code.clone()));
            assert!(!format!("{code:?}").contains(input), "Debug shows the code");
            let (year, month, day) = code.birth_date();
            let bytes = input.as_bytes();
            let sign = char::from(bytes[6]);
            let individual: u16 = input[7..10].parse().expect("three digits");
            assert_eq!(
                IdentityCode::compose(day, month, year, sign, individual),
                Ok(code.clone()),
                "compose rebuilds a parsed code"
            );
            assert_eq!(code.is_temporary(), individual >= 900);
        }
        Err(error) => {
            let text = error.to_string();
            assert!(
                ERRORS.iter().any(|known| known.to_string() == text),
                "error text is not one of the fixed messages"
            );
        }
    }
});

/// `compose` with parts taken from the first seven bytes: it returns a result, never panics, and
/// what it returns parses back to itself.
fn compose_from(data: &[u8]) {
    let [day, month, y0, y1, sign, i0, i1, ..] = *data else {
        return;
    };
    let year = u16::from_le_bytes([y0, y1]);
    let individual = u16::from_le_bytes([i0, i1]);
    if let Ok(code) = IdentityCode::compose(day, month, year, char::from(sign), individual) {
        assert_eq!(IdentityCode::parse(code.reveal()), Ok(code.clone()));
        assert_eq!(code.birth_date().1, month);
        assert_eq!(code.birth_date().2, day);
    }
}

//! Finnish personal identity codes (henkilötunnus, `DDMMYYCZZZQ`).
//!
//! Both the gateway and the sandbox must refuse exactly the same malformed codes, so the rules live
//! here once. Since 2023 the century sign is part of the identity: `010190-999W` and `010190Y999W`
//! are different people, so codes are compared exactly as written and never normalised.
//!
//! An [`IdentityCode`] never prints itself: its `Debug` is redacted and it has no `Display`, so a
//! code cannot reach a log line by accident. [`IdentityCode::reveal`] is the one explicit way out.
//! Errors name what is wrong, never the input.

use std::fmt;
use std::str::FromStr;

/// Characters indexed by `DDMMYYZZZ mod 31`.
const CHECK_CHARACTERS: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// A syntactically and arithmetically valid personal identity code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdentityCode(String);

/// Why a string is not a valid identity code. The variants never carry the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityCodeError {
    /// Not eleven ASCII characters.
    #[error("identity code must be 11 characters")]
    Length,
    /// The date part holds something other than digits.
    #[error("identity code date part must be digits")]
    DateDigits,
    /// The century sign is not one of `+ - Y X W V U A B C D E F`.
    #[error("identity code century sign is not recognised")]
    CenturySign,
    /// Day, month and century do not form a calendar date.
    #[error("identity code date does not exist")]
    Date,
    /// The individual number is not three digits in 002–999.
    #[error("identity code individual number must be 002-999")]
    IndividualNumber,
    /// The check character does not match.
    #[error("identity code check character does not match")]
    CheckCharacter,
}

impl IdentityCode {
    /// Parses a code strictly: exact length, upper-case century sign and check character.
    pub fn parse(input: &str) -> Result<Self, IdentityCodeError> {
        let bytes = input.as_bytes();
        if bytes.len() != 11 || !input.is_ascii() {
            return Err(IdentityCodeError::Length);
        }
        if !bytes[..6].iter().all(u8::is_ascii_digit) {
            return Err(IdentityCodeError::DateDigits);
        }
        let century = century_of(bytes[6]).ok_or(IdentityCodeError::CenturySign)?;
        if !bytes[7..10].iter().all(u8::is_ascii_digit) {
            return Err(IdentityCodeError::IndividualNumber);
        }
        let day = two_digits(&bytes[0..2]);
        let month = two_digits(&bytes[2..4]);
        let year = century + two_digits(&bytes[4..6]);
        if !is_calendar_date(year, month, day) {
            return Err(IdentityCodeError::Date);
        }
        let individual = u32::from(two_digits(&bytes[7..9])) * 10 + u32::from(bytes[9] - b'0');
        if individual < 2 {
            return Err(IdentityCodeError::IndividualNumber);
        }
        let expected = check_character(&bytes[0..6], individual);
        if bytes[10] != expected {
            return Err(IdentityCodeError::CheckCharacter);
        }
        Ok(Self(input.to_owned()))
    }

    /// Builds the code for a date, century sign and individual number, computing the check
    /// character. Seeds and tests use it to make valid fictional codes.
    pub fn compose(
        day: u8,
        month: u8,
        year: u16,
        sign: char,
        individual: u16,
    ) -> Result<Self, IdentityCodeError> {
        let date = format!("{day:02}{month:02}{:02}", year % 100);
        let q = check_character(date.as_bytes(), u32::from(individual)) as char;
        Self::parse(&format!("{date}{sign}{individual:03}{q}"))
    }

    /// The code itself, for the one place it must travel (the consent lookup body to DVV).
    /// Deliberately not `Display`/`as_str`, so every use is visible in review.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Individual numbers 900–999 are test and temporary codes.
    pub fn is_temporary(&self) -> bool {
        self.0.as_bytes()[7] == b'9'
    }

    /// Birth date as (year, month, day).
    pub fn birth_date(&self) -> (u16, u8, u8) {
        let b = self.0.as_bytes();
        let century = century_of(b[6]).unwrap_or(1900);
        (
            century + two_digits(&b[4..6]),
            two_digits(&b[2..4]) as u8,
            two_digits(&b[0..2]) as u8,
        )
    }
}

impl fmt::Debug for IdentityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityCode(<redacted>)")
    }
}

impl FromStr for IdentityCode {
    type Err = IdentityCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn century_of(sign: u8) -> Option<u16> {
    match sign {
        b'+' => Some(1800),
        b'-' | b'Y' | b'X' | b'W' | b'V' | b'U' => Some(1900),
        b'A' | b'B' | b'C' | b'D' | b'E' | b'F' => Some(2000),
        _ => None,
    }
}

fn two_digits(b: &[u8]) -> u16 {
    u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0')
}

/// `date` is six digits when parsing, but `compose` passes whatever its parts format to (up to
/// eight digits, e.g. day 255 and month 255), so the arithmetic is in `u64` and cannot overflow.
fn check_character(date: &[u8], individual: u32) -> u8 {
    let date_number = date
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    let n = date_number * 1000 + u64::from(individual);
    CHECK_CHARACTERS[(n % 31) as usize]
}

fn is_calendar_date(year: u16, month: u16, day: u16) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_valid_codes() {
        for code in ["131052-308T", "010190-999W", "010190Y999W"] {
            let c = IdentityCode::parse(code);
            assert!(c.is_ok(), "{code} should parse: {c:?}");
        }
    }

    #[test]
    fn new_century_signs_are_distinct_identities() {
        let a = IdentityCode::parse("010190-999W").unwrap();
        let b = IdentityCode::parse("010190Y999W").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.birth_date(), b.birth_date());
    }

    #[test]
    fn compose_round_trips_every_sign() {
        for sign in [
            '+', '-', 'Y', 'X', 'W', 'V', 'U', 'A', 'B', 'C', 'D', 'E', 'F',
        ] {
            let c = IdentityCode::compose(15, 6, 2000, sign, 950).unwrap();
            assert_eq!(IdentityCode::parse(c.reveal()).unwrap(), c);
            assert!(c.is_temporary());
        }
    }

    #[test]
    fn refuses_each_kind_of_malformation() {
        use IdentityCodeError::*;
        let cases = [
            ("", Length),
            ("131052-308", Length),
            ("131052-308TT", Length),
            ("13105a-308T", DateDigits),
            ("131052Z308T", CenturySign),
            ("131052a308T", CenturySign),
            ("131052G308T", CenturySign),
            ("321052-308T", Date),
            ("131352-308T", Date),
            ("290201A900F", Date),
            ("131052-30xT", IndividualNumber),
            ("131052-001T", IndividualNumber),
            ("131052-308U", CheckCharacter),
            ("131052-308t", CheckCharacter),
            ("131052–308T", Length),
        ];
        for (input, want) in cases {
            assert_eq!(IdentityCode::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn never_prints_itself() {
        let c = IdentityCode::parse("131052-308T").unwrap();
        assert!(!format!("{c:?}").contains("308T"));
        let err = IdentityCode::parse("131052-308U").unwrap_err();
        assert!(!err.to_string().contains("131052"));
    }

    #[test]
    fn leap_days() {
        assert!(IdentityCode::compose(29, 2, 2000, 'A', 902).is_ok());
        assert_eq!(
            IdentityCode::compose(29, 2, 1900, '-', 902),
            Err(IdentityCodeError::Date)
        );
    }
}

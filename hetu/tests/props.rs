//! Property tests of the identity-code rules: every composed valid code parses back to itself,
//! a single changed character is refused (or, for the century sign only, names another valid
//! person), and no input whatsoever makes the parser panic.

use ikkuna_hetu::IdentityCode;
use proptest::prelude::*;

const SIGNS_1800: &[char] = &['+'];
const SIGNS_1900: &[char] = &['-', 'Y', 'X', 'W', 'V', 'U'];
const SIGNS_2000: &[char] = &['A', 'B', 'C', 'D', 'E', 'F'];

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// A valid (day, month, year, sign, individual) covering all three centuries and every sign.
fn valid_parts() -> impl Strategy<Value = (u8, u8, u16, char, u16)> {
    (
        1800u16..=2099,
        1u8..=12,
        any::<prop::sample::Index>(),
        2u16..=999,
    )
        .prop_flat_map(|(year, month, sign_pick, individual)| {
            let signs = match year {
                1800..=1899 => SIGNS_1800,
                1900..=1999 => SIGNS_1900,
                _ => SIGNS_2000,
            };
            let sign = *sign_pick.get(signs);
            (1..=days_in_month(year, month))
                .prop_map(move |day| (day, month, year, sign, individual))
        })
}

/// Characters a mutation may put in: everything the parser treats specially, plus any char.
fn replacement() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::char::range('0', '9'),
        prop::sample::select(
            "+-YXWVUABCDEFHJKLMNPRSTabcdefyxw "
                .chars()
                .collect::<Vec<_>>()
        ),
        any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn composed_codes_parse_and_round_trip(
        (day, month, year, sign, individual) in valid_parts()
    ) {
        let code = IdentityCode::compose(day, month, year, sign, individual)
            .expect("a valid date, sign and individual number compose");
        let text = code.reveal().to_owned();
        prop_assert_eq!(text.len(), 11);
        let parsed = IdentityCode::parse(&text).expect("a composed code parses");
        prop_assert_eq!(&parsed, &code);
        prop_assert_eq!(parsed.reveal(), text.as_str());
        prop_assert_eq!(parsed.birth_date(), (year, month, day));
        prop_assert_eq!(parsed.is_temporary(), individual >= 900);
        let via_from_str: IdentityCode = text.parse().expect("FromStr agrees with parse");
        prop_assert_eq!(via_from_str, code);
    }

    #[test]
    fn one_changed_character_is_refused_or_another_valid_code(
        (day, month, year, sign, individual) in valid_parts(),
        position in 0usize..11,
        new in replacement(),
    ) {
        let code = IdentityCode::compose(day, month, year, sign, individual)
            .expect("valid parts compose");
        let mut chars: Vec<char> = code.reveal().chars().collect();
        prop_assume!(chars[position] != new);
        chars[position] = new;
        let mutated: String = chars.into_iter().collect();
        if let Ok(other) = IdentityCode::parse(&mutated) {
            prop_assert_ne!(&other, &code);
            prop_assert_eq!(other.reveal(), mutated.as_str());
            // The check character catches every single-character change of the digits and of
            // itself; only the century sign can name another (valid) person.
            prop_assert_eq!(position, 6, "a changed digit or check character was accepted");
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        let _ = IdentityCode::parse(&input);
    }

    #[test]
    fn code_shaped_strings_never_panic(
        input in "[0-9]{6}[+\\-YXWVUABCDEFGZa-z0-9é]{1}[0-9A-Z]{3}[0-9A-Za-z]{1}"
    ) {
        if let Ok(code) = IdentityCode::parse(&input) {
            prop_assert_eq!(code.reveal(), input.as_str());
            let (y, m, d) = code.birth_date();
            prop_assert!((1800..=2099).contains(&y) && (1..=12).contains(&m) && d >= 1);
        }
    }
}

//! Case-insensitive names and `DIRECTORY\userId` patterns.
//!
//! Qlik compares user directories, user ids, tags and role names without regard to case. Whatever the policy
//! names is folded once, when the rules are built; what QRS sends is folded on the fly, on the stack for the
//! usual ASCII names, so that deciding a large site does not allocate per allocation.
//!
//! Folding is char by char (`char::to_lowercase`), so a match never depends on neighbouring characters. It
//! agrees with `str::to_lowercase`, which `UserIdentity` equality uses, except for a word-final Greek capital
//! sigma.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::model::UserIdentity;

/// Folded keys up to this many bytes are built on the stack.
const STACK_KEY: usize = 128;

/// Up to this many names are compared one by one, which beats hashing the name.
const SMALL_SET: usize = 8;

const EXPECTED_FORM: &str = "DIRECTORY\\userId (for example CORP\\jdoe; '*' is a wildcard)";

pub(super) fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Calls `f` with `parts` joined by a backslash and case-folded.
pub(super) fn with_folded<R>(parts: &[&str], f: impl FnOnce(&str) -> R) -> R {
    let len = parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1);
    if len <= STACK_KEY && parts.iter().all(|p| p.is_ascii()) {
        let mut buf = [0u8; STACK_KEY];
        let mut end = 0;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                buf[end] = b'\\';
                end += 1;
            }
            buf[end..end + part.len()].copy_from_slice(part.as_bytes());
            end += part.len();
        }
        let key = &mut buf[..end];
        key.make_ascii_lowercase();
        if let Ok(key) = std::str::from_utf8(key) {
            return f(key);
        }
    }
    let mut key = String::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('\\');
        }
        key.extend(part.chars().flat_map(char::to_lowercase));
    }
    f(&key)
}

/// Case-insensitive ordering without allocating; used only to break ties deterministically.
pub(super) fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// A map keyed by folded names, with foldhash's fast hasher (the one hashbrown uses) rather than SipHash: the keys
/// come from the policy, so no input from QRS can lengthen a chain, and short names hash several times faster.
pub(super) type FoldedMap<V> = HashMap<Box<str>, V, foldhash::fast::FixedState>;

/// Whether `input` folds to `folded`, without allocating.
fn eq_folded(input: &str, folded: &str) -> bool {
    if input.is_ascii() {
        // `folded` has no upper-case ASCII, so ignoring ASCII case on both sides is the same as folding input.
        input.eq_ignore_ascii_case(folded)
    } else {
        input
            .chars()
            .flat_map(char::to_lowercase)
            .eq(folded.chars())
    }
}

/// A set of names compared case-insensitively that remembers the policy's spelling for reports.
#[derive(Debug, Clone, Default)]
pub(super) struct FoldedSet {
    /// Folded name and the policy's spelling, first spelling wins.
    names: Vec<(Box<str>, Arc<str>)>,
    /// Index into `names`, once there are too many to compare one by one.
    index: Option<FoldedMap<usize>>,
}

impl FoldedSet {
    pub(super) fn insert(&mut self, name: &str) {
        let folded = fold(name).into_boxed_str();
        let known = match &self.index {
            Some(index) => index.contains_key(&folded),
            None => self.names.iter().any(|(known, _)| *known == folded),
        };
        if known {
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(folded.clone(), self.names.len());
        }
        self.names.push((folded, Arc::from(name)));
        if self.index.is_none() && self.names.len() > SMALL_SET {
            self.index = Some(
                self.names
                    .iter()
                    .enumerate()
                    .map(|(i, (folded, _))| (folded.clone(), i))
                    .collect(),
            );
        }
    }

    /// The policy's spelling of `name`, if the set holds it.
    pub(super) fn get(&self, name: &str) -> Option<&Arc<str>> {
        let found = match &self.index {
            Some(index) => with_folded(&[name], |key| index.get(key).copied()),
            None => self
                .names
                .iter()
                .position(|(folded, _)| eq_folded(name, folded)),
        };
        found
            .and_then(|i| self.names.get(i))
            .map(|(_, spelling)| spelling)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One side of a pattern: folded text in which `*` matches any run of characters.
#[derive(Debug, Clone)]
struct Glob {
    folded: Box<str>,
    wildcard: bool,
}

impl Glob {
    fn new(text: &str) -> Glob {
        Glob {
            folded: fold(text).into_boxed_str(),
            wildcard: text.contains('*'),
        }
    }

    fn matches(&self, input: &str) -> bool {
        if input.is_ascii() {
            self.matches_bytes(input.as_bytes())
        } else {
            self.matches_bytes(fold(input).as_bytes())
        }
    }

    /// `input` is ASCII or already folded; ASCII letters are lowered here. Working on UTF-8 bytes is sound:
    /// a literal run of the pattern starts on a character boundary, and no such byte equals a continuation
    /// byte, so a match never splits a character.
    fn matches_bytes(&self, input: &[u8]) -> bool {
        let pattern = self.folded.as_bytes();
        if !self.wildcard {
            return pattern.len() == input.len()
                && pattern
                    .iter()
                    .zip(input)
                    .all(|(p, c)| *p == c.to_ascii_lowercase());
        }
        // Greedy matching with one backtrack point: the last '*' seen. Linear for the usual patterns
        // (a prefix or a suffix), and never worse than pattern length times input length.
        let (mut p, mut i) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while i < input.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, i));
                    p += 1;
                }
                Some(&c) if c == input[i].to_ascii_lowercase() => {
                    p += 1;
                    i += 1;
                }
                _ => match star {
                    Some((star_p, star_i)) => {
                        p = star_p + 1;
                        i = star_i + 1;
                        star = Some((star_p, star_i + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == b'*')
    }
}

/// A `DIRECTORY\userId` pattern: `*` matches any run of characters (also none), and case is ignored.
///
/// The directory and the user id are matched separately, so a `*` never reaches across the backslash:
/// `CORP\*` is everyone in CORP, `*\jdoe` is jdoe in any directory.
#[derive(Debug, Clone)]
pub struct UserPattern {
    text: Arc<str>,
    directory: Glob,
    user_id: Glob,
}

impl UserPattern {
    /// Parses `DIRECTORY\userId`; the error says what is wrong and shows the expected form.
    pub fn parse(text: &str) -> Result<UserPattern, String> {
        let mut parts = text.split('\\');
        let (directory, user_id) = match (parts.next(), parts.next(), parts.next()) {
            (Some(directory), Some(user_id), None) => (directory, user_id),
            (_, None, _) => return Err(format!("\"{text}\" is not {EXPECTED_FORM}")),
            _ => {
                // A single-quoted YAML string keeps both backslashes of CORP\\jdoe.
                return Err(format!(
                    "\"{text}\" has {} backslashes; expected exactly one: {EXPECTED_FORM}. In YAML write \
                     'CORP\\jdoe' (single quotes) or \"CORP\\\\jdoe\" (double quotes)",
                    text.matches('\\').count()
                ));
            }
        };
        for (part, what) in [(directory, "directory"), (user_id, "user id")] {
            if part.is_empty() {
                return Err(format!(
                    "\"{text}\" has an empty {what}; expected {EXPECTED_FORM}"
                ));
            }
            if part.trim() != part {
                return Err(format!(
                    "\"{text}\" has spaces around the {what}, which no Qlik user has; expected {EXPECTED_FORM}"
                ));
            }
        }
        Ok(UserPattern {
            text: Arc::from(text),
            directory: Glob::new(directory),
            user_id: Glob::new(user_id),
        })
    }

    pub fn matches(&self, user: &UserIdentity) -> bool {
        self.directory.matches(&user.directory) && self.user_id.matches(&user.user_id)
    }

    /// The pattern as the policy spells it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard and so names one user.
    pub fn is_exact(&self) -> bool {
        !self.directory.wildcard && !self.user_id.wildcard
    }

    pub(super) fn shared_text(&self) -> &Arc<str> {
        &self.text
    }

    /// The folded `directory\userid` key of an exact pattern; the parts hold no backslash, so it equals the
    /// key of exactly the identities the pattern names.
    fn exact_key(&self) -> Option<Box<str>> {
        self.is_exact()
            .then(|| format!("{}\\{}", self.directory.folded, self.user_id.folded).into_boxed_str())
    }
}

impl FromStr for UserPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserPattern::parse(s)
    }
}

impl fmt::Display for UserPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for UserPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for UserPattern {}

/// A list of user patterns. A predefined scope list can hold thousands of plain names, so exact patterns are
/// looked up by hash and only wildcard patterns are scanned.
#[derive(Debug, Clone, Default)]
pub(super) struct PatternSet {
    patterns: Vec<UserPattern>,
    exact: FoldedMap<usize>,
    wildcard: Vec<usize>,
}

impl FromIterator<UserPattern> for PatternSet {
    fn from_iter<I: IntoIterator<Item = UserPattern>>(patterns: I) -> Self {
        let mut set = PatternSet::default();
        for pattern in patterns {
            set.push(pattern);
        }
        set
    }
}

impl PatternSet {
    pub(super) fn push(&mut self, pattern: UserPattern) {
        let index = self.patterns.len();
        match pattern.exact_key() {
            Some(key) => {
                self.exact.entry(key).or_insert(index);
            }
            None => self.wildcard.push(index),
        }
        self.patterns.push(pattern);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern, in policy order, that matches `user`.
    pub(super) fn first_match(&self, user: &UserIdentity) -> Option<&UserPattern> {
        let exact = if self.exact.is_empty() {
            None
        } else {
            with_folded(&[&user.directory, &user.user_id], |key| {
                self.exact.get(key).copied()
            })
        };
        let before = exact.unwrap_or(usize::MAX);
        self.wildcard
            .iter()
            .take_while(|&&i| i < before)
            .filter_map(|&i| self.patterns.get(i))
            .find(|p| p.matches(user))
            .or_else(|| exact.and_then(|i| self.patterns.get(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(directory: &str, user_id: &str) -> UserIdentity {
        UserIdentity::new(directory, user_id)
    }

    fn pattern(text: &str) -> UserPattern {
        match UserPattern::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn patterns_are_equal_when_written_alike() {
        assert_eq!(pattern(r"CORP\a*"), pattern(r"CORP\a*"));
        assert_ne!(pattern(r"CORP\a*"), pattern(r"CORP\b*"));
        assert_eq!(
            pattern(r"CORP\A*").to_string(),
            r"CORP\A*",
            "shown as the policy spells it"
        );
    }

    #[test]
    fn folded_keys_of_any_length_and_any_case() {
        // The stack buffer holds 128 bytes: keys at, around and far beyond it, in one part or several.
        for len in [0, 1, 63, 127, 128, 129, 300] {
            let part = "Ab".repeat(len / 2) + &"C".repeat(len % 2);
            let one = with_folded(&[part.as_str()], str::to_string);
            assert_eq!(one, part.to_lowercase(), "one part of {len} bytes");
            let two = with_folded(&[part.as_str(), "DIR"], str::to_string);
            assert_eq!(two, format!("{}\\dir", part.to_lowercase()), "two parts");
        }
        assert_eq!(with_folded(&["ÅSE", "Ölund"], str::to_string), "åse\\ölund");
    }

    #[test]
    fn prefix_wildcard_in_user_id() {
        let p = pattern(r"INTERNAL\sa_*");
        assert!(p.matches(&id("INTERNAL", "sa_repository")));
        assert!(p.matches(&id("internal", "SA_API")));
        assert!(p.matches(&id("Internal", "sa_")));
        assert!(!p.matches(&id("INTERNAL", "xsa_api")));
        assert!(!p.matches(&id("CORP", "sa_api")));
        assert!(!p.is_exact());
    }

    #[test]
    fn wildcard_directory() {
        let p = pattern(r"*\jdoe");
        assert!(p.matches(&id("CORP", "jdoe")));
        assert!(p.matches(&id("ext", "JDOE")));
        assert!(!p.matches(&id("CORP", "jdoe2")));
        assert!(!p.matches(&id("CORP", "xjdoe")));
    }

    #[test]
    fn whole_directory() {
        let p = pattern(r"CORP\*");
        assert!(p.matches(&id("corp", "anyone")));
        assert!(p.matches(&id("CORP", "")));
        assert!(!p.matches(&id("CORP2", "anyone")));
        assert!(!p.matches(&id("COR", "anyone")));
    }

    #[test]
    fn star_never_reaches_across_the_backslash() {
        let p = pattern(r"CO*\jdoe");
        assert!(p.matches(&id("CORP", "jdoe")));
        assert!(!p.matches(&id("CORP", "x\\jdoe")));
        let p = pattern(r"*\*");
        assert!(p.matches(&id("A", "b")));
    }

    #[test]
    fn exact_pattern_ignores_case() {
        let p = pattern(r"CORP\JDoe");
        assert!(p.is_exact());
        assert!(p.matches(&id("corp", "jdoe")));
        assert!(p.matches(&id("CORP", "JDOE")));
        assert!(!p.matches(&id("CORP", "jdoe ")));
    }

    #[test]
    fn infix_and_multiple_wildcards() {
        let p = pattern(r"C*P\j*d*e");
        assert!(p.matches(&id("CP", "jde")));
        assert!(p.matches(&id("CORP", "jxxdyye")));
        assert!(p.matches(&id("CORP", "jdede")));
        assert!(!p.matches(&id("CORP", "jdex")));
        assert!(!p.matches(&id("CORPX", "jde")));
        let p = pattern(r"**\a**b");
        assert!(p.matches(&id("x", "ab")));
        assert!(p.matches(&id("", "aXb")));
        assert!(!p.matches(&id("x", "ba")));
    }

    #[test]
    fn non_ascii_names_fold_too() {
        let p = pattern(r"ÆØÅ\BJØRN*");
        assert!(p.matches(&id("æøå", "bjørn.hansen")));
        assert!(p.matches(&id("ÆØÅ", "Bjørn")));
        assert!(!p.matches(&id("AOA", "bjorn")));
        // U+212A KELVIN SIGN lowers to an ASCII k.
        assert!(pattern(r"K\x").matches(&id("\u{212A}", "X")));
        assert!(pattern("\u{212A}\\x").matches(&id("k", "x")));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = UserPattern::parse("jdoe").unwrap_err();
        assert_eq!(
            e,
            r#""jdoe" is not DIRECTORY\userId (for example CORP\jdoe; '*' is a wildcard)"#
        );
        assert!(
            UserPattern::parse("")
                .unwrap_err()
                .contains("is not DIRECTORY\\userId")
        );
        let e = UserPattern::parse(r"CORP\\jdoe").unwrap_err();
        assert!(e.contains("has 2 backslashes"), "{e}");
        let e = UserPattern::parse(r"\jdoe").unwrap_err();
        assert!(e.contains("empty directory"), "{e}");
        let e = UserPattern::parse(r"CORP\").unwrap_err();
        assert!(e.contains("empty user id"), "{e}");
        let e = UserPattern::parse(r"CORP\jdoe ").unwrap_err();
        assert!(e.contains("spaces around the user id"), "{e}");
        let e = UserPattern::parse(r" CORP\jdoe").unwrap_err();
        assert!(e.contains("spaces around the directory"), "{e}");
        assert!(r"CORP\j doe".parse::<UserPattern>().is_ok());
    }

    #[test]
    fn pattern_set_reports_the_first_match_in_policy_order() {
        let mut set = PatternSet::default();
        for p in [r"CORP\a*", r"CORP\alice", r"*\alice", r"CORP\bob"] {
            set.push(pattern(p));
        }
        let hit = |d: &str, u: &str| set.first_match(&id(d, u)).map(|p| p.as_str().to_string());
        assert_eq!(hit("corp", "ALICE").as_deref(), Some(r"CORP\a*"));
        assert_eq!(hit("ext", "alice").as_deref(), Some(r"*\alice"));
        assert_eq!(hit("Corp", "Bob").as_deref(), Some(r"CORP\bob"));
        assert_eq!(hit("corp", "carol"), None);

        let mut set = PatternSet::default();
        for p in [r"CORP\alice", r"*\alice"] {
            set.push(pattern(p));
        }
        assert_eq!(
            set.first_match(&id("CORP", "alice"))
                .map(UserPattern::as_str),
            Some(r"CORP\alice")
        );
        // A backslash inside an identity's directory must not fake an exact key.
        let mut set = PatternSet::default();
        set.push(pattern(r"a\b"));
        assert!(set.first_match(&id("a\\b", "")).is_none());
        assert!(set.first_match(&id("a", "b")).is_some());
    }

    #[test]
    fn folded_set_keeps_the_policy_spelling() {
        let mut set = FoldedSet::default();
        set.insert("INTERNAL");
        set.insert("internal");
        set.insert("Ørsted");
        assert_eq!(set.get("Internal").map(|s| &**s), Some("INTERNAL"));
        assert_eq!(set.get("ØRSTED").map(|s| &**s), Some("Ørsted"));
        assert!(set.get("INTERNA").is_none());
        let long = "x".repeat(STACK_KEY + 10);
        set.insert(&long.to_uppercase());
        assert!(set.get(&long).is_some());
    }

    /// A slow, obviously right matcher to check the fast one against.
    fn reference_glob(pattern: &[char], input: &[char]) -> bool {
        match pattern.split_first() {
            None => input.is_empty(),
            Some(('*', rest)) => (0..=input.len()).any(|k| reference_glob(rest, &input[k..])),
            Some((c, rest)) => input.first() == Some(c) && reference_glob(rest, &input[1..]),
        }
    }

    fn reference_matches(pattern: &str, user: &UserIdentity) -> bool {
        let Some((d, u)) = pattern.split_once('\\') else {
            return false;
        };
        let chars = |s: &str| fold(s).chars().collect::<Vec<_>>();
        reference_glob(&chars(d), &chars(&user.directory))
            && reference_glob(&chars(u), &chars(&user.user_id))
    }

    proptest! {
        #[test]
        fn matches_like_the_reference(
            d in "[aAbB*é]{1,4}", u in "[aAbBÉ*]{1,5}",
            dir in "[aAbBéÉ]{0,5}", user in "[aAbBéÉ]{0,6}",
        ) {
            let text = format!("{d}\\{u}");
            let p = pattern(&text);
            let who = id(&dir, &user);
            prop_assert_eq!(p.matches(&who), reference_matches(&text, &who));
            let mut set = PatternSet::default();
            set.push(p);
            prop_assert_eq!(set.first_match(&who).is_some(), reference_matches(&text, &who));
        }

        #[test]
        fn exact_patterns_agree_with_identity_equality(
            d in "[a-cA-C]{1,3}", u in "[a-cA-C]{1,3}", dir in "[a-cA-C]{1,3}", user in "[a-cA-C]{1,3}",
        ) {
            let p = pattern(&format!("{d}\\{u}"));
            let who = id(&dir, &user);
            prop_assert_eq!(p.matches(&who), id(&d, &u) == who);
        }
    }
}

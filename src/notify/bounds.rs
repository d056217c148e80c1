//! What a site's template may build. Templates come from namespace users and render inside the shared
//! controller, so one template must not be able to take the memory every other tenant's run needs. Fuel bounds
//! the steps a rendering takes, not what one step builds: `"x" * 100000000` is one step, and so is `a ~ a`.
//!
//! minijinja (as pinned in Cargo.lock) offers no memory limit and no way to replace its operators, so the bounds
//! are three:
//! - Before a template is accepted, its syntax tree is checked: the constructs that build text or lists with no
//!   hook to bound them are refused with a message naming the line (`*` except between constants, slices,
//!   `{% set %}` and `{% filter %}` blocks, recursive loops; macros, includes and blocks are not compiled in),
//!   and so are filters, tests and functions outside a known list, and lists or maps that would hold a value the
//!   template built from another list or map (forty `{% set a = [a, a] %}` hold 2^40 items in a few kilobytes,
//!   and comparing two never ends). `~` and `+` are allowed between the site's data, constants, numbers and
//!   filters applied to those (`{{ user.name ~ " (" ~ user.id ~ ")" }}`, `{% for s in reclaimed %}{{ s.user ~
//!   " " ~ s.reason }}`), but not on a value the template built: a name set (with set, with or for) to what a
//!   filter, `~`, `+`, a list literal or a function made, or to anything computed from such a name, so that
//!   `{% set a = a ~ a %}` cannot double text statement after statement (the bomb
//!   `{% set a = "x" * 100000000 %}{% set a = a ~ a %}` took 504 MiB). A template holds at most [`JOIN_LIMIT`]
//!   of them, so that one expression joins a bounded number of the site's values; and a tag chains at most
//!   [`CHAIN_LIMIT`] operators, filters and lookups, counted on its tokens before it is parsed, since minijinja
//!   reads a chain into a tree as deep as it is long; for the same reason a template holds at most
//!   [`ELIF_LIMIT`] `elif` and nests blocks at most [`DEPTH_LIMIT`] deep.
//! - Every filter that is left runs through a wrapper that charges what it builds (text, list slots) to the
//!   rendering's budget, [`BUILD_LIMIT`], and the ones that can multiply their input (`replace`, `join`,
//!   `indent`) check the size of their result before building it; walking a list is charged by its items, and
//!   walking text by its characters (minijinja iterates a string as the list of its characters), and a filter
//!   that collects items (`list`, `sort`, `batch`, `split`, ...) checks the slots it will reserve first. The
//!   budget only goes down while a message renders, so values built and dropped in a loop count too: what is
//!   alive at once is never more.
//! - The output is written through a writer that stops at [`OUTPUT_LIMIT`], and a value is turned into text only
//!   once its length is known to fit.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::io;

use minijinja::machinery::{WhitespaceConfig, ast, parse};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

/// Text and list slots one message may build while it renders (each of subject, text and HTML).
pub const BUILD_LIMIT: usize = 4 << 20;
/// The most one part of a message (subject, text, HTML) may be. A summary lists at most 200 seats of each kind,
/// a few hundred kilobytes even with the longest names Qlik allows.
pub const OUTPUT_LIMIT: usize = 4 << 20;
/// The longest a string or list repeated between constants (`"-" * 40`) may be.
const CONSTANT_REPEAT_LIMIT: usize = 1024;
/// What one list slot costs, whatever it holds (the items themselves are charged when built).
const SLOT: usize = std::mem::size_of::<Value>();
/// What a filter walking one item of its input is charged: the budget then allows half a million items walked.
const WALK: usize = 8;

/// Filters that turn their input into text: an input that is not a string is turned into text here first,
/// bounded and charged, so the filter never formats a value of unknown size itself.
const TEXT_FILTERS: [&str; 11] = [
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "escape",
    "e",
    "safe",
    "string",
    "split",
    "lines",
];
/// Filters whose result is no larger than their input (or a number); what they build is charged afterwards.
const VALUE_FILTERS: [&str; 27] = [
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "bool",
    "batch",
    "sum",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "unique",
];
/// Filters that can multiply their input: each checks the size of its result first.
const GROWING_FILTERS: [&str; 3] = ["replace", "join", "indent"];
/// Tests answer yes or no; the ones on text are given only strings (anything else is not lower case, does not
/// start with anything).
const TESTS: [&str; 33] = [
    "defined",
    "undefined",
    "none",
    "safe",
    "escaped",
    "boolean",
    "true",
    "false",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "int",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "eq",
    "equalto",
    "==",
    "ne",
    "!=",
    "lt",
    "<",
    "le",
    "<=",
    "gt",
    ">",
    "ge",
    ">=",
    "in",
];
const TEXT_TESTS: [&str; 4] = ["lower", "upper", "startingwith", "endingwith"];
/// Functions: `range` is lazy and at most 100,000 long; what is built from it is charged.
const FUNCTIONS: [&str; 1] = ["range"];

thread_local! {
    /// What the rendering on this thread may still build. Rendering is synchronous, so a filter always runs on
    /// the thread that set the budget; outside a rendering it is 0 and every filter refuses.
    static LEFT: Cell<usize> = const { Cell::new(0) };
}

fn too_much() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the template builds more than {} MiB of text and lists for one message (the limit)",
            BUILD_LIMIT >> 20
        ),
    )
}

fn left() -> usize {
    LEFT.with(Cell::get)
}

/// Take `bytes` from the budget, or fail the rendering (and leave nothing for the rest of it).
fn charge(bytes: usize) -> Result<(), Error> {
    LEFT.with(|left| match left.get().checked_sub(bytes) {
        Some(rest) => {
            left.set(rest);
            Ok(())
        }
        None => {
            left.set(0);
            Err(too_much())
        }
    })
}

/// Run `render` with a fresh budget.
pub fn with_budget<T>(render: impl FnOnce() -> T) -> T {
    let before = LEFT.with(|left| left.replace(BUILD_LIMIT));
    let rendered = render();
    LEFT.with(|left| left.set(before));
    rendered
}

/// Counts what formatting writes, and stops at `cap`: a value's length is known without building its text.
struct Counter {
    written: usize,
    cap: usize,
}

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.written = self.written.saturating_add(s.len());
        if self.written > self.cap {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The length of `value` as text, if it is at most `cap`.
fn text_len(value: &Value, cap: usize) -> Option<usize> {
    if let Some(s) = value.as_str() {
        return (s.len() <= cap).then_some(s.len());
    }
    let mut counter = Counter { written: 0, cap };
    fmt::write(&mut counter, format_args!("{value}")).ok()?;
    Some(counter.written)
}

/// Strings, numbers and the like as they are (they exist already); anything else as text, bounded and charged.
fn as_text(value: Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            let len = text_len(&value, left()).ok_or_else(too_much)?;
            charge(len)?;
            Ok(Value::from(value.to_string()))
        }
        _ => Ok(value),
    }
}

/// What a filter's result holds that its inputs did not: its text, or a slot for each item (and the text of
/// items that are strings, as `split` makes new ones).
fn built(value: &Value) -> usize {
    if let Some(s) = value.as_str() {
        return s.len();
    }
    match value.kind() {
        ValueKind::Seq => value.try_iter().map_or(0, |items| {
            items.fold(0usize, |sum, item| {
                sum.saturating_add(SLOT)
                    .saturating_add(item.as_str().map_or(0, str::len))
            })
        }),
        ValueKind::Map => value.len().unwrap_or(0).saturating_mul(2 * SLOT),
        _ => 0,
    }
}

/// The filter `name` of minijinja's own, wrapped in the bounds that fit it.
fn bounded_filter(
    name: &'static str,
) -> impl Fn(&State, Rest<Value>) -> Result<Value, Error> + Send + Sync + 'static {
    let builtin = builtin_filter(name);
    let text = TEXT_FILTERS.contains(&name) || GROWING_FILTERS.contains(&name);
    move |state: &State, args: Rest<Value>| {
        let mut args = args.0;
        if text {
            // join's first argument is the list it joins; its items are measured below.
            let skip = usize::from(name == "join");
            args = args
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    if i < skip || a.is_kwargs() {
                        Ok(a)
                    } else {
                        as_text(a)
                    }
                })
                .collect::<Result<_, _>>()?;
        }
        // Sorting, summing or selecting walks every item: charged too, so that a loop cannot repeat a walk of
        // 100,000 items for as long as its fuel lasts. minijinja walks text character by character (and counts
        // them first), so a string is walked as the list of its characters.
        let items = args.first().and_then(|a| walked_items(name, a));
        if let Some(items) = items {
            charge(items.saturating_mul(WALK))?;
        }
        // What a collecting filter will build, checked before it builds it: `big|batch(1)` over three million
        // characters reserved 300 MB before anything was counted.
        let reserved = reserved(name, &args, items.unwrap_or(0));
        fits(reserved)?;
        match name {
            "replace" => fits(replaced_len(state, &args))?,
            "join" => fits(joined_len(state, &args))?,
            "indent" => fits(indented_len(&args))?,
            // Escaping makes at most six bytes of one (`/` becomes `&#x2f;`).
            "escape" | "e" => fits(arg_str(&args, 0).len().checked_mul(6))?,
            _ => {}
        }
        let result = builtin.call(state, &args)?;
        charge(built(&result).max(reserved.unwrap_or(0)))?;
        Ok(result)
    }
}

/// Filters that walk the characters of a string they are given (minijinja counts them even to take its length).
const STRING_WALKS: [&str; 18] = [
    "length",
    "count",
    "reverse",
    "sort",
    "list",
    "batch",
    "sum",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "unique",
    "min",
    "max",
    "join",
    "split",
    "lines",
];

/// How many items filter `name` walks in `input`: a list's or map's items (taking the length of one walks
/// nothing), a string's characters, or None when it walks nothing.
fn walked_items(name: &str, input: &Value) -> Option<usize> {
    match input.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
            if !matches!(name, "length" | "count") =>
        {
            Some(input.len().unwrap_or(0))
        }
        ValueKind::String if STRING_WALKS.contains(&name) => {
            input.as_str().map(|s| s.chars().count())
        }
        _ => None,
    }
}

/// What a batch costs beyond the slots it reserves: the list object that holds them.
const BATCH: usize = 64;

/// The bytes filter `name` reserves for what it builds from `items` items, before it has any: a slot for each
/// item it may keep (two more for each `unique` remembers), the batches and their reserved slots, the pieces
/// `split` and `lines` cut and the text they copy. Some(0) for filters that build no list.
fn reserved(name: &str, args: &[Value], items: usize) -> Option<usize> {
    let slots = match name {
        "list" | "sort" | "reverse" | "select" | "reject" | "selectattr" | "rejectattr" | "map" => {
            Some(items)
        }
        "unique" => items.checked_mul(3),
        // batch reserves items / count slots for the batches, then count slots for each batch (and a last one
        // it may leave empty), each batch a list object of its own.
        "batch" => {
            let Some(count) = args.get(1).and_then(|c| usize::try_from(c.clone()).ok()) else {
                return Some(0);
            };
            let count = count.max(1);
            let batches = items.div_ceil(count).checked_add(1)?;
            let per_batch = count.checked_mul(SLOT)?.checked_add(BATCH)?;
            return batches
                .checked_mul(per_batch)?
                .checked_add((items / count).checked_mul(SLOT)?);
        }
        "split" | "lines" => {
            let text = arg_str(args, 0);
            let pieces = if name == "lines" {
                text.lines().count()
            } else {
                match args.get(1).and_then(Value::as_str) {
                    None => text.split_whitespace().count(),
                    Some("") => text.chars().count() + 2,
                    Some(sep) => text.matches(sep).count() + 1,
                }
            };
            return pieces.checked_mul(SLOT)?.checked_add(text.len());
        }
        _ => Some(0),
    };
    slots?.checked_mul(SLOT)
}

fn fits(len: Option<usize>) -> Result<(), Error> {
    match len {
        Some(len) if len <= left() => Ok(()),
        _ => Err(too_much()),
    }
}

fn arg_str(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or("")
}

/// At most what `value|replace(from, to)` makes: every match of `from` (every character boundary if it is
/// empty) becomes `to`, and HTML escaping when a part is marked safe (at most six bytes for one).
fn replaced_len(state: &State, args: &[Value]) -> Option<usize> {
    let (value, from, to) = (arg_str(args, 0), arg_str(args, 1), arg_str(args, 2));
    let matches = if from.is_empty() {
        value.chars().count() + 1
    } else {
        value.matches(from).count()
    };
    let len = value.len().checked_add(matches.checked_mul(to.len())?)?;
    escaped(state, len)
}

/// `len` as HTML escaping may grow it, where the template escapes.
fn escaped(state: &State, len: usize) -> Option<usize> {
    if matches!(state.auto_escape(), AutoEscape::None) {
        Some(len)
    } else {
        len.checked_mul(6)
    }
}

/// At most what `items|join(sep)` makes: each item as text, the separators, and HTML escaping (at most six
/// bytes for one).
fn joined_len(state: &State, args: &[Value]) -> Option<usize> {
    let items = args.first()?;
    let sep = arg_str(args, 1).len();
    let cap = left();
    let mut total = 0usize;
    for (i, item) in items.try_iter().ok()?.enumerate() {
        if i > 0 {
            total = total.checked_add(sep)?;
        }
        total = total.checked_add(text_len(&item, cap.checked_sub(total)?)?)?;
        if total > cap {
            return None;
        }
    }
    escaped(state, total)
}

/// At most what `value|indent(width)` makes: the width before every line.
fn indented_len(args: &[Value]) -> Option<usize> {
    let value = arg_str(args, 0);
    let kwarg = |key: &str| {
        args.iter()
            .filter(|a| a.is_kwargs())
            .find_map(|a| a.get_attr(key).ok().filter(|v| !v.is_undefined()))
    };
    let width = args
        .get(1)
        .filter(|a| !a.is_kwargs())
        .cloned()
        .or_else(|| kwarg("width"))
        .map_or(Some(4), |w| usize::try_from(w).ok())?;
    let lines = value.lines().count() + 1;
    value.len().checked_add(lines.checked_mul(width)?)
}

fn builtin_filter(name: &str) -> Value {
    use minijinja::filters as f;
    match name {
        "lower" => Value::from_function(f::lower),
        "upper" => Value::from_function(f::upper),
        "title" => Value::from_function(f::title),
        "capitalize" => Value::from_function(f::capitalize),
        "trim" => Value::from_function(f::trim),
        "escape" | "e" => Value::from_function(f::escape),
        "safe" => Value::from_function(f::safe),
        "string" => Value::from_function(f::string),
        "split" => Value::from_function(f::split),
        "lines" => Value::from_function(f::lines),
        "length" | "count" => Value::from_function(f::length),
        "dictsort" => Value::from_function(f::dictsort),
        "items" => Value::from_function(f::items),
        "reverse" => Value::from_function(f::reverse),
        "default" | "d" => Value::from_function(f::default),
        "round" => Value::from_function(f::round),
        "abs" => Value::from_function(f::abs),
        "int" => Value::from_function(f::int),
        "float" => Value::from_function(f::float),
        "attr" => Value::from_function(f::attr),
        "first" => Value::from_function(f::first),
        "last" => Value::from_function(f::last),
        "min" => Value::from_function(f::min),
        "max" => Value::from_function(f::max),
        "sort" => Value::from_function(f::sort),
        "list" => Value::from_function(f::list),
        "bool" => Value::from_function(f::bool),
        "batch" => Value::from_function(f::batch),
        "sum" => Value::from_function(f::sum),
        "select" => Value::from_function(f::select),
        "reject" => Value::from_function(f::reject),
        "selectattr" => Value::from_function(f::selectattr),
        "rejectattr" => Value::from_function(f::rejectattr),
        "map" => Value::from_function(f::map),
        "unique" => Value::from_function(f::unique),
        "replace" => Value::from_function(f::replace),
        "join" => Value::from_function(f::join),
        "indent" => Value::from_function(f::indent),
        _ => Value::UNDEFINED,
    }
}

fn builtin_test(name: &str) -> Value {
    use minijinja::tests as t;
    match name {
        "defined" => Value::from_function(t::is_defined),
        "undefined" => Value::from_function(t::is_undefined),
        "none" => Value::from_function(t::is_none),
        "safe" | "escaped" => Value::from_function(t::is_safe),
        "boolean" => Value::from_function(t::is_boolean),
        "true" => Value::from_function(t::is_true),
        "false" => Value::from_function(t::is_false),
        "odd" => Value::from_function(t::is_odd),
        "even" => Value::from_function(t::is_even),
        "divisibleby" => Value::from_function(t::is_divisibleby),
        "number" => Value::from_function(t::is_number),
        "integer" | "int" => Value::from_function(t::is_integer),
        "float" => Value::from_function(t::is_float),
        "string" => Value::from_function(t::is_string),
        "sequence" => Value::from_function(t::is_sequence),
        "iterable" => Value::from_function(t::is_iterable),
        "mapping" => Value::from_function(t::is_mapping),
        "eq" | "equalto" | "==" => Value::from_function(t::is_eq),
        "ne" | "!=" => Value::from_function(t::is_ne),
        "lt" | "<" => Value::from_function(t::is_lt),
        "le" | "<=" => Value::from_function(t::is_le),
        "gt" | ">" => Value::from_function(t::is_gt),
        "ge" | ">=" => Value::from_function(t::is_ge),
        "in" => Value::from_function(t::is_in),
        "lower" => Value::from_function(t::is_lower),
        "upper" => Value::from_function(t::is_upper),
        "startingwith" => Value::from_function(t::is_startingwith),
        "endingwith" => Value::from_function(t::is_endingwith),
        _ => Value::UNDEFINED,
    }
}

/// An environment with only the bounded filters, tests and functions, fuel, and a formatter that never turns
/// a value into more text than a message may hold.
pub fn environment(fuel: u64) -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_fuel(Some(fuel));
    // Environment::empty() has no auto-escape callback: HTML templates escape what they insert, as before.
    env.set_auto_escape_callback(minijinja::default_auto_escape_callback);
    env.set_formatter(|out: &mut Output, state: &State, value: &Value| {
        if !matches!(
            value.kind(),
            ValueKind::String | ValueKind::Number | ValueKind::Bool
        ) && text_len(value, OUTPUT_LIMIT).is_none()
        {
            return Err(too_much());
        }
        minijinja::escape_formatter(out, state, value)
    });
    for name in TEXT_FILTERS
        .into_iter()
        .chain(VALUE_FILTERS)
        .chain(GROWING_FILTERS)
    {
        env.add_filter(name, bounded_filter(name));
    }
    for name in TESTS {
        let test = builtin_test(name);
        env.add_test(name, move |state: &State, args: Rest<Value>| {
            Ok::<_, Error>(test.call(state, &args)?.is_true())
        });
    }
    for name in TEXT_TESTS {
        let test = builtin_test(name);
        env.add_test(name, move |state: &State, args: Rest<Value>| {
            if args.iter().any(|a| a.as_str().is_none()) {
                return Ok(false);
            }
            // `is lower` and `is upper` walk every character of the text.
            if matches!(name, "lower" | "upper") {
                charge(arg_str(&args, 0).chars().count().saturating_mul(WALK))?;
            }
            Ok::<_, Error>(test.call(state, &args)?.is_true())
        });
    }
    env.add_function("range", minijinja::functions::range);
    env
}

/// Writes a part of a message, up to [`OUTPUT_LIMIT`].
#[derive(Default)]
pub struct CappedOutput {
    pub bytes: Vec<u8>,
    pub overflowed: bool,
}

impl io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > OUTPUT_LIMIT {
            self.overflowed = true;
            return Err(io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why `source` cannot be a template, if it uses something that could build without bound. A template that
/// does not parse is left to the environment, which names the error.
// SyntaxConfig is a unit struct only while minijinja's custom_syntax feature is off; default() builds it either way.
#[allow(clippy::default_constructed_unit_structs)]
pub fn refusal(source: &str) -> Option<String> {
    if let Err(why) = chains(source) {
        return Some(why);
    }
    let tree = parse(
        source,
        "template",
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
    .ok()?;
    stmt(&tree)
        .err()
        .or_else(|| shared(&tree).err())
        .or_else(|| joins(&tree).err())
}

/// The most operators, filters, tests, calls and lookups one tag (`{{ }}` or `{% %}`) may chain. minijinja
/// parses `a ~ a ~ a ...`, `x|f|f ...`, `x.a.a ...` or `not not ...` into a tree as deep as the chain is long, and
/// parses, checks, compiles and drops it recursively: a tag of 100,000 `~` (a few hundred kilobytes, within a
/// ConfigMap's 1 MiB) overflowed the stack of the thread reading it and aborted the controller. 2,500 overflowed
/// a test thread's 2 MiB in a debug build; 500 leaves five times that.
const CHAIN_LIMIT: usize = 500;

/// Refuses a tag that chains more than [`CHAIN_LIMIT`], a template with more than [`ELIF_LIMIT`] `elif` or blocks
/// nested deeper than [`DEPTH_LIMIT`], reading only its tokens, before anything is parsed. A source that does
/// not tokenize is counted up to its error, and left to the parser to name.
#[allow(clippy::default_constructed_unit_structs)]
fn chains(source: &str) -> Result<(), String> {
    use minijinja::machinery::{Token, tokenize};
    let mut count = 0usize;
    let tokens = tokenize(
        source,
        false,
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    );
    // Whole-template counts: `elif`s, blocks open, and whether the tag read is `{% set x %}` (a block) so far.
    let (mut elifs, mut depth, mut first, mut set_block) = (0usize, 0usize, false, false);
    for token in tokens {
        let Ok((token, span)) = token else {
            break;
        };
        let keyword = std::mem::take(&mut first);
        if keyword && let Token::Ident(word) = token {
            let (opens, closes) = nests(word);
            elifs += usize::from(word == "elif");
            set_block = word == "set";
            depth = depth.saturating_sub(usize::from(closes));
            depth += usize::from(opens);
            if elifs > ELIF_LIMIT {
                return refuse(
                    span.start_line,
                    &format!("more than {ELIF_LIMIT} `elif` in one template"),
                    "the controller reads each as a level deeper than the last; test with {% if %} blocks \
                     one after another",
                );
            }
            if depth > DEPTH_LIMIT {
                return refuse(
                    span.start_line,
                    &format!("blocks nested more than {DEPTH_LIMIT} deep"),
                    "the controller reads each as a level deeper than the last; close blocks before opening more",
                );
            }
        }
        match token {
            Token::Assign => set_block = false,
            Token::BlockEnd if std::mem::take(&mut set_block) => depth += 1,
            _ => {}
        }
        let chains = match token {
            Token::VariableStart => {
                count = 0;
                false
            }
            Token::BlockStart => {
                count = 0;
                first = true;
                false
            }
            Token::Ident(word) => matches!(word, "not" | "and" | "or" | "is" | "in" | "if"),
            Token::TemplateData(_)
            | Token::VariableEnd
            | Token::BlockEnd
            | Token::Str(_)
            | Token::String(_)
            | Token::Int(_)
            | Token::Int128(_)
            | Token::Float(_)
            | Token::Comma
            | Token::Colon
            | Token::Assign
            | Token::BracketClose
            | Token::ParenClose
            | Token::BraceClose => false,
            _ => true,
        };
        count += usize::from(chains);
        if count > CHAIN_LIMIT {
            return refuse(
                span.start_line,
                &format!(
                    "a tag of more than {CHAIN_LIMIT} operators, filters, tests, calls and lookups"
                ),
                "the controller reads it as a tree as deep as it is long; split it with {% set %}",
            );
        }
    }
    Ok(())
}

/// The most `elif` one template may hold: minijinja reads an `elif` as an `if` inside the `else` of the one
/// before, recursing once for each with no guard, and checks, walks and drops the tree recursively:
/// `{% if 1 %}` and 100,000 `{% elif 1 %}` (a megabyte, within a ConfigMap) overflowed the stack.
const ELIF_LIMIT: usize = 100;
/// How deep blocks (`if`, `for`, `with`, `filter`, `autoescape`, `{% set x %}`...) may nest in one template.
const DEPTH_LIMIT: usize = 32;

/// Whether the tag keyword `word` opens a block (set only as `{% set x %}`, counted at the tag's end) and whether
/// it closes one.
fn nests(word: &str) -> (bool, bool) {
    match word {
        "if" | "for" | "with" | "filter" | "autoescape" | "macro" | "call" | "block" => {
            (true, false)
        }
        _ => (false, word.starts_with("end")),
    }
}

/// Refuses what could build a value holding another many times over: each `{% set a = [a, a] %}` doubles a
/// value's size as it is printed, compared or sorted while its memory barely grows, so forty of them make a
/// comparison that never ends (minijinja compares item by item). A list or map literal may hold the context's
/// values and what is computed from them, but nothing the template built from a literal before (a name bound
/// by set, with or for to such a value, or `loop`); `batch` may not fill and `map` may not take a default.
fn shared(tree: &ast::Stmt<'_>) -> Result<(), String> {
    let mut bound = Vec::new();
    bindings(tree, &mut bound);
    let mut built: HashSet<&str> = HashSet::from(["loop"]);
    loop {
        let before = built.len();
        for b in &bound {
            if !built.contains(b.name) && holds(b.value, &built, true) {
                built.insert(b.name);
            }
        }
        if built.len() == before {
            break;
        }
    }
    each_expr(tree, &mut |e| match e {
        ast::Expr::List(_) | ast::Expr::Map(_) if holds(e, &built, false) => refuse(
            line_of(e),
            "a list or map holding a value the template built from another list or map",
            "repeated, it builds values without a limit; build lists from the context's values",
        ),
        ast::Expr::Filter(f) if f.name == "batch" && f.args.len() > 1 => refuse(
            f.span().start_line,
            "batch with a fill value",
            "it repeats a value without a limit",
        ),
        ast::Expr::Filter(f)
            if f.name == "map"
                && f.args
                    .iter()
                    .any(|a| matches!(a, ast::CallArg::Kwarg("default", _))) =>
        {
            refuse(
                f.span().start_line,
                "map with a default",
                "it repeats a value without a limit",
            )
        }
        _ => Ok(()),
    })
}

/// Filters whose result is text, a number or a list of new strings: whatever their input holds, it holds no
/// other value.
const FLAT_FILTERS: [&str; 21] = [
    "join",
    "string",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "escape",
    "e",
    "safe",
    "replace",
    "indent",
    "split",
    "lines",
    "length",
    "count",
    "round",
    "abs",
    "int",
    "float",
    "sum",
];

/// Whether the value of `e` may hold a value the template built from a list or map literal: a name in `built`,
/// or (when `literals`) a literal whose items are not all constants. Text, numbers and booleans hold nothing.
fn holds(e: &ast::Expr<'_>, built: &HashSet<&str>, literals: bool) -> bool {
    use ast::Expr;
    let any = |list: &[Expr<'_>]| list.iter().any(|i| holds(i, built, literals));
    match e {
        Expr::Var(v) => built.contains(v.id),
        Expr::List(l) => (literals && l.as_const().is_none()) || any(&l.items),
        Expr::Map(m) => (literals && m.as_const().is_none()) || any(&m.keys) || any(&m.values),
        Expr::Filter(f) if FLAT_FILTERS.contains(&f.name) => false,
        Expr::Filter(f) => {
            f.expr.as_ref().is_some_and(|i| holds(i, built, literals))
                || call_args(&f.args, built, literals)
        }
        Expr::GetAttr(g) => holds(&g.expr, built, literals),
        Expr::GetItem(g) => holds(&g.expr, built, literals),
        Expr::IfExpr(i) => {
            holds(&i.true_expr, built, literals)
                || i.false_expr
                    .as_ref()
                    .is_some_and(|x| holds(x, built, literals))
        }
        Expr::Call(c) => holds(&c.expr, built, literals) || call_args(&c.args, built, literals),
        Expr::Slice(s) => holds(&s.expr, built, literals),
        // Constants, arithmetic, comparisons and tests: numbers, booleans or short constant text.
        _ => false,
    }
}

fn call_args(list: &[ast::CallArg<'_>], built: &HashSet<&str>, literals: bool) -> bool {
    list.iter().any(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => holds(e, built, literals),
    })
}

fn line_of(e: &ast::Expr<'_>) -> u16 {
    match e {
        ast::Expr::List(l) => l.span().start_line,
        ast::Expr::Map(m) => m.span().start_line,
        _ => 0,
    }
}

/// The most `~` and `+` (other than a sum with a number constant) one template may hold. Each joins values that
/// exist already (the site's data, the template's constants, a filter's result charged as it was built), and
/// minijinja cannot charge what it makes, so the count bounds it: one expression joins at most 17 such values.
/// The largest is a summary's seat list printed as text, which escapes its strings: 200 seats whose names are
/// 511 characters of four bytes, each printed as ten, about a megabyte. Seventeen of them joined in
/// one expression peak at 27 MiB (measured by the test below; 65 of them, the limit before, peaked at 106 MiB of
/// a pod's 128). Which operands are lists is not known before rendering, so they are bounded by their number.
const JOIN_LIMIT: usize = 16;

/// Filters whose result is a number or a boolean, whatever their input.
const NUMBER_FILTERS: [&str; 8] = [
    "length", "count", "int", "float", "round", "abs", "sum", "bool",
];

/// Filters whose result's items are items of their input (or pairs of a map's keys and values, or one item).
const ITEM_FILTERS: [&str; 14] = [
    "sort",
    "reverse",
    "unique",
    "list",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "dictsort",
    "items",
    "first",
    "last",
    "min",
    "max",
];

/// What `loop` tells that is a number or a boolean (its `previtem` and `nextitem` are items of what it walks).
const LOOP_COUNTERS: [&str; 9] = [
    "index",
    "index0",
    "revindex",
    "revindex0",
    "length",
    "first",
    "last",
    "depth",
    "depth0",
];

/// Refuses `~` and `+` that could grow text a template keeps: `{% set a = a ~ a %}` doubles it each time, so a
/// few dozen statements fill the controller's memory in one step each, which neither the fuel nor the budget
/// sees. An operand may be the site's data, a constant, a number, or a filter applied to those (a filter is
/// charged each time it runs), but nothing the template built: a name set (with set, with or for) to anything
/// else than the site's data, a constant or a number, what is computed from such a name, a list or map literal,
/// or a function's result. And a template holds at most [`JOIN_LIMIT`] of them, so that even a long chain over
/// the largest of the site's values stays bounded.
fn joins(tree: &ast::Stmt<'_>) -> Result<(), String> {
    let mut bound = Vec::new();
    bindings(tree, &mut bound);
    // `loop` is built by every loop; what it counts is allowed where it is read (see plain).
    let mut built: HashSet<&str> = HashSet::from(["loop"]);
    loop {
        let before = built.len();
        for b in &bound {
            let kept = if b.each {
                each_plain(b.value, &built)
            } else {
                plain(b.value, &built)
            };
            if !kept {
                built.insert(b.name);
            }
        }
        if built.len() == before {
            break;
        }
    }
    let mut count = 0usize;
    each_expr(tree, &mut |e| {
        let ast::Expr::BinOp(b) = e else {
            return Ok(());
        };
        let what = match b.op {
            ast::BinOpKind::Concat => "`~`",
            // A number on either side: the sum is a number or an error, never a longer string or list.
            ast::BinOpKind::Add if !number_constant(&b.left) && !number_constant(&b.right) => "`+`",
            _ => return Ok(()),
        };
        let line = b.span().start_line;
        count += 1;
        if count > JOIN_LIMIT {
            return refuse(
                line,
                &format!("more than {JOIN_LIMIT} `~` and `+` in one template"),
                "each joins text or lists that minijinja does not count; write the parts one after another, \
                 {{ a }}{{ b }}, or use [a, b]|join",
            );
        }
        match joinable(&b.left, &built).and_then(|()| joinable(&b.right, &built)) {
            Ok(()) => Ok(()),
            Err(operand) => refuse(
                line,
                &format!("{what} on {operand}, which the template built,"),
                "repeated, it doubles text or lists without a limit; join only the site's data and constants, \
                 write the parts one after another, {{ a }}{{ b }}, or use [a, b]|join",
            ),
        }
    })
}

fn number_constant(e: &ast::Expr<'_>) -> bool {
    matches!(constant(e), Some(Constant::Number(_)))
}

/// `loop.index` and the like: a number or a boolean.
fn loop_counter(e: &ast::Expr<'_>) -> bool {
    matches!(e, ast::Expr::GetAttr(g)
        if matches!(&g.expr, ast::Expr::Var(v) if v.id == "loop") && LOOP_COUNTERS.contains(&g.name))
}

/// Whether `e` may be an operand of `~` or `+`: what it is made of exists already, or is charged each time it is
/// built. The operand that is not, named, if any. A `~` or `+` operand is checked on its own.
fn joinable(e: &ast::Expr<'_>, built: &HashSet<&str>) -> Result<(), String> {
    use ast::Expr;
    let args = |list: &[ast::CallArg<'_>]| {
        list.iter().try_for_each(|arg| match arg {
            ast::CallArg::Pos(e)
            | ast::CallArg::Kwarg(_, e)
            | ast::CallArg::PosSplat(e)
            | ast::CallArg::KwargSplat(e) => joinable(e, built),
        })
    };
    match e {
        Expr::Var(v) if built.contains(v.id) => Err(format!("`{}`", v.id)),
        _ if loop_counter(e) => Ok(()),
        Expr::Var(_) | Expr::Const(_) | Expr::Test(_) | Expr::Compare(_) | Expr::UnaryOp(_) => {
            Ok(())
        }
        Expr::GetAttr(g) => joinable(&g.expr, built),
        Expr::GetItem(g) => joinable(&g.expr, built),
        Expr::Filter(f) if NUMBER_FILTERS.contains(&f.name) => Ok(()),
        Expr::Filter(f) => {
            f.expr.as_ref().map_or(Ok(()), |i| joinable(i, built))?;
            args(&f.args)
        }
        Expr::IfExpr(i) => {
            joinable(&i.true_expr, built)?;
            i.false_expr.as_ref().map_or(Ok(()), |x| joinable(x, built))
        }
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr | ast::BinOpKind::Mul => {
                joinable(&b.left, built)?;
                joinable(&b.right, built)
            }
            // `~` and `+` are checked on their own; the rest make numbers or booleans.
            _ => Ok(()),
        },
        Expr::List(l) if l.as_const().is_some() => Ok(()),
        Expr::Map(m) if m.as_const().is_some() => Ok(()),
        Expr::List(_) | Expr::Map(_) => Err("a list or map literal".into()),
        Expr::Call(_) => Err("a function's result".into()),
        _ => Err("this value".into()),
    }
}

/// Whether a name bound to `e` holds only what exists without the template (the site's data, a constant) or a
/// number: then `~` may read it any number of times. A filter's result is charged once, when it is built, so a
/// name keeping one is built, and so is one keeping what `~` or `+` made.
fn plain(e: &ast::Expr<'_>, built: &HashSet<&str>) -> bool {
    use ast::Expr;
    match e {
        Expr::Var(v) => !built.contains(v.id),
        _ if loop_counter(e) => true,
        Expr::Const(_) | Expr::Test(_) | Expr::Compare(_) | Expr::UnaryOp(_) => true,
        Expr::GetAttr(g) => plain(&g.expr, built),
        Expr::GetItem(g) => plain(&g.expr, built),
        Expr::Filter(f) => NUMBER_FILTERS.contains(&f.name),
        Expr::IfExpr(i) => {
            plain(&i.true_expr, built) && i.false_expr.as_ref().is_none_or(|x| plain(x, built))
        }
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::Concat => false,
            ast::BinOpKind::Add => number_constant(&b.left) || number_constant(&b.right),
            ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr | ast::BinOpKind::Mul => {
                plain(&b.left, built) && plain(&b.right, built)
            }
            _ => true,
        },
        Expr::List(l) => l.as_const().is_some(),
        Expr::Map(m) => m.as_const().is_some(),
        _ => false,
    }
}

/// Whether each item of what a loop walks is plain: the items of plain data, numbers from `range`, the items a
/// sorting or selecting filter keeps of such, the pieces `split` or `lines` cut from plain text. Not `batch`,
/// whose one group may hold all of a long range.
fn each_plain(e: &ast::Expr<'_>, built: &HashSet<&str>) -> bool {
    use ast::Expr;
    let plain_args = |list: &[ast::CallArg<'_>]| {
        list.iter().all(|arg| match arg {
            ast::CallArg::Pos(e)
            | ast::CallArg::Kwarg(_, e)
            | ast::CallArg::PosSplat(e)
            | ast::CallArg::KwargSplat(e) => plain(e, built),
        })
    };
    match e {
        _ if plain(e, built) => true,
        Expr::Call(c) => matches!(c.identify_call(), ast::CallType::Function("range")),
        Expr::List(l) => l.items.iter().all(|i| plain(i, built)),
        Expr::Filter(f) if ITEM_FILTERS.contains(&f.name) => {
            f.expr.as_ref().is_some_and(|i| each_plain(i, built)) && plain_args(&f.args)
        }
        // map(attribute=...) keeps an attribute of each item; map with a filter builds new ones.
        Expr::Filter(f) if f.name == "map" => {
            f.expr.as_ref().is_some_and(|i| each_plain(i, built))
                && f.args
                    .iter()
                    .all(|a| matches!(a, ast::CallArg::Kwarg("attribute", v) if plain(v, built)))
        }
        Expr::Filter(f) if matches!(f.name, "split" | "lines") => {
            f.expr.as_ref().is_some_and(|i| plain(i, built)) && plain_args(&f.args)
        }
        _ => false,
    }
}

/// The names `target` binds (`a`, or `a, b` when unpacking).
fn names<'s>(target: &ast::Expr<'s>, out: &mut Vec<&'s str>) {
    match target {
        ast::Expr::Var(v) => out.push(v.id),
        ast::Expr::List(l) => l.items.iter().for_each(|item| names(item, out)),
        _ => {}
    }
}

/// A name a statement binds, with the expression it is bound to: its value (set, with) or, for a loop, what the
/// loop walks (`each`: the name takes each item in turn).
struct Binding<'a, 's> {
    name: &'s str,
    value: &'a ast::Expr<'s>,
    each: bool,
}

/// Every name a statement binds (set, with, for) with the expression it is bound to.
fn bindings<'a, 's>(node: &'a ast::Stmt<'s>, out: &mut Vec<Binding<'a, 's>>) {
    use ast::Stmt;
    let bind = |target: &ast::Expr<'s>, value: &'a ast::Expr<'s>, each: bool, out: &mut Vec<_>| {
        let mut bound = Vec::new();
        names(target, &mut bound);
        out.extend(bound.into_iter().map(|name| Binding { name, value, each }));
    };
    let body = |list: &'a [Stmt<'s>], out: &mut Vec<_>| list.iter().for_each(|s| bindings(s, out));
    match node {
        Stmt::Template(t) => body(&t.children, out),
        Stmt::ForLoop(f) => {
            bind(&f.target, &f.iter, true, out);
            body(&f.body, out);
            body(&f.else_body, out);
        }
        Stmt::IfCond(c) => {
            body(&c.true_body, out);
            body(&c.false_body, out);
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                bind(target, value, false, out);
            }
            body(&w.body, out);
        }
        Stmt::Set(s) => bind(&s.target, &s.expr, false, out),
        Stmt::AutoEscape(a) => body(&a.body, out),
        _ => {}
    }
}

/// Every expression of the template's statements, outermost first, until `f` refuses one; not the targets of
/// set, with and for, which name values rather than build them.
fn each_expr<'s>(
    node: &ast::Stmt<'s>,
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    use ast::Stmt;
    let body = |list: &[Stmt<'s>], f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>| {
        list.iter().try_for_each(|s| each_expr(s, f))
    };
    match node {
        Stmt::Template(t) => body(&t.children, f),
        Stmt::EmitExpr(e) => visit(&e.expr, f),
        Stmt::ForLoop(l) => {
            visit(&l.iter, f)?;
            if let Some(e) = &l.filter_expr {
                visit(e, f)?;
            }
            body(&l.body, f)?;
            body(&l.else_body, f)
        }
        Stmt::IfCond(c) => {
            visit(&c.expr, f)?;
            body(&c.true_body, f)?;
            body(&c.false_body, f)
        }
        Stmt::WithBlock(w) => {
            for (_, value) in &w.assignments {
                visit(value, f)?;
            }
            body(&w.body, f)
        }
        Stmt::Set(s) => visit(&s.expr, f),
        Stmt::AutoEscape(a) => {
            visit(&a.enabled, f)?;
            body(&a.body, f)
        }
        Stmt::Do(d) => {
            visit(&d.call.expr, f)?;
            visit_args(&d.call.args, f)
        }
        _ => Ok(()),
    }
}

fn visit_args<'s>(
    list: &[ast::CallArg<'s>],
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    list.iter().try_for_each(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => visit(e, f),
    })
}

/// `e` and every expression inside it, outermost first.
fn visit<'s>(
    e: &ast::Expr<'s>,
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    use ast::Expr;
    f(e)?;
    let some = |e: &Option<Expr<'s>>, f: &mut dyn FnMut(&Expr<'s>) -> Result<(), String>| {
        e.as_ref().map_or(Ok(()), |e| visit(e, f))
    };
    match e {
        Expr::Slice(s) => {
            visit(&s.expr, f)?;
            some(&s.start, f)?;
            some(&s.stop, f)?;
            some(&s.step, f)
        }
        Expr::UnaryOp(u) => visit(&u.expr, f),
        Expr::BinOp(b) => {
            visit(&b.left, f)?;
            visit(&b.right, f)
        }
        Expr::Compare(c) => {
            visit(&c.expr, f)?;
            c.ops.iter().try_for_each(|op| visit(&op.expr, f))
        }
        Expr::IfExpr(i) => {
            visit(&i.test_expr, f)?;
            visit(&i.true_expr, f)?;
            some(&i.false_expr, f)
        }
        Expr::Filter(x) => {
            some(&x.expr, f)?;
            visit_args(&x.args, f)
        }
        Expr::Test(t) => {
            visit(&t.expr, f)?;
            visit_args(&t.args, f)
        }
        Expr::GetAttr(g) => visit(&g.expr, f),
        Expr::GetItem(g) => {
            visit(&g.expr, f)?;
            visit(&g.subscript_expr, f)
        }
        Expr::Call(c) => {
            visit(&c.expr, f)?;
            visit_args(&c.args, f)
        }
        Expr::List(l) => l.items.iter().try_for_each(|i| visit(i, f)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(|i| visit(i, f)),
        _ => Ok(()),
    }
}

fn refuse(line: u16, what: &str, why: &str) -> Result<(), String> {
    Err(format!(
        "line {line}: {what} is not allowed in notification templates ({why})"
    ))
}

fn stmts(list: &[ast::Stmt<'_>]) -> Result<(), String> {
    list.iter().try_for_each(stmt)
}

fn stmt(node: &ast::Stmt<'_>) -> Result<(), String> {
    use ast::Stmt;
    match node {
        Stmt::Template(t) => stmts(&t.children),
        Stmt::EmitExpr(e) => expr(&e.expr),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::ForLoop(f) => {
            if f.recursive {
                return refuse(
                    f.span().start_line,
                    "a recursive loop",
                    "its output is built outside the message's limit",
                );
            }
            expr(&f.target)?;
            expr(&f.iter)?;
            f.filter_expr.as_ref().map_or(Ok(()), expr)?;
            stmts(&f.body)?;
            stmts(&f.else_body)
        }
        Stmt::IfCond(c) => {
            expr(&c.expr)?;
            stmts(&c.true_body)?;
            stmts(&c.false_body)
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                expr(target)?;
                expr(value)?;
            }
            stmts(&w.body)
        }
        Stmt::Set(s) => {
            expr(&s.target)?;
            expr(&s.expr)
        }
        Stmt::SetBlock(s) => refuse(
            s.span().start_line,
            "{% set %}...{% endset %}",
            "what it captures is built outside the message's limit; use {% set x = ... %}",
        ),
        Stmt::AutoEscape(a) => {
            expr(&a.enabled)?;
            stmts(&a.body)
        }
        Stmt::FilterBlock(f) => refuse(
            f.span().start_line,
            "{% filter %}",
            "what it captures is built outside the message's limit; apply the filter to a value",
        ),
        Stmt::Do(d) => call(&d.call),
        #[allow(unreachable_patterns)]
        _ => refuse(0, "this statement", "not known to be bounded"),
    }
}

/// A constant operand: its length if it is text or a list, or None for a number.
enum Constant {
    Sized(usize),
    Number(Option<usize>),
}

fn constant(node: &ast::Expr<'_>) -> Option<Constant> {
    match node {
        ast::Expr::Const(c) => Some(match c.value.as_str() {
            Some(s) => Constant::Sized(s.len()),
            None if c.value.kind() == ValueKind::Number => {
                Constant::Number(usize::try_from(c.value.clone()).ok())
            }
            None => Constant::Sized(c.value.len().unwrap_or(1)),
        }),
        ast::Expr::List(l) if l.as_const().is_some() => Some(Constant::Sized(l.items.len())),
        _ => None,
    }
}

fn binop(b: &ast::Spanned<ast::BinOp<'_>>) -> Result<(), String> {
    use ast::BinOpKind;
    let line = b.span().start_line;
    let (left, right) = (constant(&b.left), constant(&b.right));
    // `~` and `+` are checked with what the template binds: see joins.
    match b.op {
        BinOpKind::Mul => match (left, right) {
            (Some(Constant::Number(_)), Some(Constant::Number(_))) => Ok(()),
            (Some(Constant::Sized(len)), Some(Constant::Number(Some(n))))
            | (Some(Constant::Number(Some(n))), Some(Constant::Sized(len)))
                if len.saturating_mul(n) <= CONSTANT_REPEAT_LIMIT =>
            {
                Ok(())
            }
            _ => refuse(
                line,
                "`*` other than between number constants or a short repeat such as \"-\" * 40",
                "it repeats text or lists without a limit",
            ),
        },
        _ => Ok(()),
    }?;
    expr(&b.left)?;
    expr(&b.right)
}

fn args(list: &[ast::CallArg<'_>]) -> Result<(), String> {
    list.iter().try_for_each(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => expr(e),
    })
}

fn call(c: &ast::Spanned<ast::Call<'_>>) -> Result<(), String> {
    match c.identify_call() {
        ast::CallType::Function(name) if !FUNCTIONS.contains(&name) => {
            return refuse(
                c.span().start_line,
                &format!("the function `{name}`"),
                "only range() is available",
            );
        }
        ast::CallType::Function(_) => {}
        ast::CallType::Method(on, _) | ast::CallType::Object(on) => expr(on)?,
        #[allow(unreachable_patterns)]
        _ => return refuse(c.span().start_line, "this call", "not known to be bounded"),
    }
    args(&c.args)
}

fn expr(node: &ast::Expr<'_>) -> Result<(), String> {
    use ast::Expr;
    match node {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => refuse(
            s.span().start_line,
            "a slice",
            "it copies text or lists outside the message's limit; use |first, |last or |batch",
        ),
        Expr::UnaryOp(u) => expr(&u.expr),
        Expr::BinOp(b) => binop(b),
        Expr::Compare(c) => {
            expr(&c.expr)?;
            c.ops.iter().try_for_each(|op| expr(&op.expr))
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(()), expr)
        }
        Expr::Filter(f) => {
            let known = TEXT_FILTERS
                .iter()
                .chain(&VALUE_FILTERS)
                .chain(&GROWING_FILTERS)
                .any(|n| *n == f.name);
            if !known {
                return refuse(
                    f.span().start_line,
                    &format!("the filter `{}`", f.name),
                    "not one of the filters known to be bounded; see docs/resource.md",
                );
            }
            f.expr.as_ref().map_or(Ok(()), expr)?;
            args(&f.args)
        }
        Expr::Test(t) => {
            if !TESTS.contains(&t.name) && !TEXT_TESTS.contains(&t.name) {
                return refuse(
                    t.span().start_line,
                    &format!("the test `{}`", t.name),
                    "not one of the tests available; see docs/resource.md",
                );
            }
            expr(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expr(&g.expr),
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)
        }
        Expr::Call(c) => call(c),
        Expr::List(l) => l.items.iter().try_for_each(expr),
        Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(expr),
        #[allow(unreachable_patterns)]
        _ => refuse(0, "this expression", "not known to be bounded"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::notify::NotifyError;
    use crate::notify::templates::{
        NoticeContext, NoticeRule, SeatLine, SummaryContext, SummaryCounts, Templates, UserContext,
    };
    use crate::testing::peak_of;

    const MIB: usize = 1 << 20;

    fn notice() -> NoticeContext {
        NoticeContext {
            user: UserContext {
                name: "Ann Lee".into(),
                id: "CORP\\ann".into(),
                email: "ann@example.com".into(),
            },
            rule: NoticeRule::Idle,
            user_state: String::new(),
            access_type: "professional".into(),
            last_used: "2026-09-01".into(),
            idle_days: Some(91),
            reclaim_after: "2026-12-15".into(),
            policy: "prod-site".into(),
            contact: "qlik-admins@example.com".into(),
        }
    }

    fn with(source: &str) -> Result<Templates, NotifyError> {
        Templates::new(&BTreeMap::from([(
            "notice.txt".to_string(),
            source.to_string(),
        )]))
    }

    /// Render `source` as notice.txt: the text, or the error, and the most it had allocated at once.
    fn render(source: &str) -> (Result<String, String>, usize) {
        let templates = with(source).expect("accepted");
        let (rendered, peak) = peak_of(|| templates.render("notice", &notice()));
        (rendered.map(|r| r.text).map_err(|e| e.to_string()), peak)
    }

    #[test]
    fn the_template_bomb_is_refused_before_it_runs() {
        let (refused, peak) =
            peak_of(|| with(r#"{% set a = "x" * 100000000 %}{% set a = a ~ a %}{{ a|length }}"#));
        let Err(e) = refused else {
            panic!("the bomb was accepted")
        };
        let e = e.to_string();
        assert!(e.contains("notice.txt") && e.contains("`*`"), "{e}");
        assert!(peak < MIB, "{peak} bytes to refuse it");
    }

    #[test]
    fn constructs_that_build_without_a_hook_are_refused_with_the_line() {
        for (source, named) in [
            (
                "{% set a = 'x' %}{% for i in range(40) %}\n{% set a = a ~ a %}{% endfor %}",
                "line 2: `~`",
            ),
            ("{{ [1] * 100000000 }}", "`*`"),
            ("{{ user.name * 3 }}", "`*`"),
            (
                "{% set a = user.name %}{% set a = a + a %}",
                "line 1: `+` on `a`",
            ),
            ("{{ user.name[1:] }}", "a slice"),
            ("{% set a %}{{ user.name }}{% endset %}", "{% set %}"),
            ("{% filter upper %}x{% endfilter %}", "{% filter %}"),
            (
                "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
                "recursive loop",
            ),
            ("{% set ns = namespace(a=1) %}", "the function `namespace`"),
            ("{{ '%s'|format(user.name) }}", "the filter `format`"),
            ("{{ user|tojson }}", "the filter `tojson`"),
            (
                "{% set a = [user] %}\n{% set b = a %}{% set a = [a, b] %}",
                "line 2: a list or map holding a value the template built",
            ),
            (
                "{% for x in [user.name] %}{% set y = {'k': x} %}{% endfor %}",
                "a list or map holding",
            ),
            (
                "{{ range(9)|batch(3, user)|list }}",
                "batch with a fill value",
            ),
            (
                "{{ range(9)|map(attribute='x', default=user)|list }}",
                "map with a default",
            ),
        ] {
            let Err(e) = with(source) else {
                panic!("accepted: {source}")
            };
            let e = e.to_string();
            assert!(
                e.contains(named) && e.contains("not allowed"),
                "{source}: {e}"
            );
        }
    }

    /// `~` and `+` join the site's data and constants as Jinja users write them, with names set to such data, loop
    /// counters, numbers and filters on the data; the result reads as the template says.
    #[test]
    fn ordinary_joins_are_accepted_and_render_exactly() {
        for (source, expected) in [
            (
                r#"{{ user.name ~ " (" ~ user.id ~ ")" }}"#,
                "Ann Lee (CORP\\ann)",
            ),
            (
                r#"{% set label = user.name ~ " <" ~ user.email ~ ">" %}{{ label }}"#,
                "Ann Lee <ann@example.com>",
            ),
            (r#"{{ "Dear " ~ user.name }}"#, "Dear Ann Lee"),
            (r#"{{ user.name + "!" }}"#, "Ann Lee!"),
            (
                r#"{% set n = user.name %}{{ n ~ ", " ~ idle_days ~ " days" }}"#,
                "Ann Lee, 91 days",
            ),
            (
                r#"{{ (user.name|upper) ~ " " ~ (user.email|replace("@", " at ")) }}"#,
                "ANN LEE ann at example.com",
            ),
            (
                r#"{% set parts = [user.name, policy] %}{{ "parts: " ~ parts|length }}"#,
                "parts: 2",
            ),
            (
                r##"{% for i in range(2) %}{{ "#" ~ loop.index ~ "/" ~ i }} {% endfor %}"##,
                "#1/0 #2/1 ",
            ),
            (
                r#"{% with who = user %}{{ who.name ~ (" (" ~ rule ~ ")" if idle_days) }}{% endwith %}"#,
                "Ann Lee (idle)",
            ),
        ] {
            let (text, _) = render(source);
            assert_eq!(text.as_deref(), Ok(expected), "{source}");
        }
    }

    fn seat(user: &str, reason: &str) -> SeatLine {
        SeatLine {
            user: user.into(),
            access_type: "professional".into(),
            last_used: "2026-09-01".into(),
            reason: reason.into(),
        }
    }

    /// A loop walks the site's data: its variable joins like the data itself, and so does what it keeps of a
    /// sorted or selected list, or of a map's items.
    #[test]
    fn a_loop_over_the_sites_lists_joins_its_items() {
        let summary = SummaryContext {
            policy: "prod-site".into(),
            run_id: "r1".into(),
            result: "Succeeded".into(),
            dry_run: false,
            message: String::new(),
            reclaimed: vec![
                seat("CORP\\bo", "idle 120 days"),
                seat("CORP\\al", "leaver"),
            ],
            warned: Vec::new(),
            failed: Vec::new(),
            counts: SummaryCounts {
                reclaimed: 2,
                warned: 0,
                failed: 0,
            },
            not_listed: SummaryCounts::default(),
            omitted: 0,
        };
        let source = concat!(
            r#"{% for s in reclaimed %}{{ s.user ~ " " ~ s.reason }}; {% endfor %}"#,
            r#"{% for s in reclaimed|sort(attribute="user") %}{% set line = loop.index ~ ". " ~ s.user %}"#,
            r#"{{ line }} {% endfor %}"#,
            r#"{% for k, v in counts|dictsort %}{{ k ~ "=" ~ v }} {% endfor %}"#,
            r#"{% for u in reclaimed|map(attribute="user") %}{{ u + "," }}{% endfor %}"#,
        );
        let templates = Templates::new(&BTreeMap::from([(
            "summary.txt".to_string(),
            source.to_string(),
        )]))
        .expect("accepted");
        let text = templates.render("summary", &summary).expect("renders").text;
        assert_eq!(
            text,
            concat!(
                "CORP\\bo idle 120 days; CORP\\al leaver; ",
                "1. CORP\\al 2. CORP\\bo ",
                "failed=0 reclaimed=2 warned=0 ",
                "CORP\\bo,CORP\\al,",
            )
        );
    }

    /// What `~` or `+` made, or a filter's result kept under a name, may not be joined again: each statement
    /// could double it. The message names the line, the operand and what to write instead.
    #[test]
    fn doubling_chains_are_refused_naming_the_operand() {
        for (source, named) in [
            (
                "{% set a = user.name %}\n{% set a = a ~ a %}{{ a|length }}",
                "line 2: `~` on `a`",
            ),
            (
                "{% set a = user.name ~ '' %}{% set b = a ~ a %}",
                "`~` on `a`",
            ),
            (
                "{% set a = user.name %}{% for i in range(40) %}{% set a = a + a %}{% endfor %}",
                "`+` on `a`",
            ),
            (
                "{% set a = user.name ~ '' %}{% set b = a %}{{ b ~ b }}",
                "`~` on `b`",
            ),
            (
                "{% with a = user.name ~ user.name %}{{ a ~ a }}{% endwith %}",
                "`~` on `a`",
            ),
            (
                "{% set a = user.name ~ '' %}{% set a = (a|upper) ~ a %}",
                "`~` on `a`",
            ),
            (
                "{% set a = user.name ~ '' %}{{ user.name|replace('A', a) ~ '' }}",
                "`~` on `a`",
            ),
            ("{% set a = user.name|upper %}{{ a ~ a }}", "`~` on `a`"),
            (
                "{% set l = [user.name ~ user.name] %}{% for x in l %}{% set y = x ~ x %}{% endfor %}",
                "`~` on `x`",
            ),
            (
                "{% set a = user.name ~ '' %}{% for x in [a] %}{{ x ~ x }}{% endfor %}",
                "`~` on `x`",
            ),
            (
                "{% for g in range(100000)|batch(100000) %}{{ g ~ g }}{% endfor %}",
                "`~` on `g`",
            ),
            ("{{ [user, user] ~ '' }}", "`~` on a list or map literal"),
            ("{{ range(100000) ~ '' }}", "`~` on a function's result"),
            (
                "{{ range(9)|list + range(9)|list }}",
                "`+` on a function's result",
            ),
        ] {
            let Err(e) = with(source) else {
                panic!("accepted: {source}")
            };
            let e = e.to_string();
            assert!(
                e.contains(named) && e.contains("not allowed") && e.contains("{{ a }}{{ b }}"),
                "{source}: {e}"
            );
        }
        // A macro's arguments would be values the template passes around; minijinja is built without macros.
        assert!(with("{% macro m(a) %}{{ a ~ a }}{% endmacro %}{{ m(user.name) }}").is_err());
    }

    /// Joins of the site's data are bounded by their number: a template of thousands of `~` over one value is
    /// refused, counting every expression of the template, and the message says what to write instead.
    #[test]
    fn more_joins_than_the_limit_are_refused() {
        let chain = |n: usize| format!("{{{{ {}'' }}}}", "policy ~ ".repeat(n));
        let (text, _) = render(&chain(super::JOIN_LIMIT));
        assert_eq!(
            text.expect("renders"),
            "prod-site".repeat(super::JOIN_LIMIT)
        );
        for source in [
            chain(super::JOIN_LIMIT + 1),
            "{{ user.name ~ '' }}\n".repeat(super::JOIN_LIMIT + 1),
        ] {
            let Err(e) = with(&source) else {
                panic!("accepted {} bytes", source.len())
            };
            let e = e.to_string();
            assert!(
                e.contains("more than 16 `~` and `+` in one template")
                    && e.contains("not allowed")
                    && e.contains("{{ a }}{{ b }}"),
                "{e}"
            );
        }
        let Err(e) = with(&"{{ user.name ~ '' }}\n".repeat(super::JOIN_LIMIT + 1)) else {
            panic!("accepted")
        };
        assert!(e.to_string().contains("line 17:"), "{e}");
    }

    /// The largest values a template can join are the summary's seat lists printed as text: 200 seats whose
    /// names are 511 characters of four bytes, each printed escaped as ten, about a megabyte a list. Joining them
    /// as often as the limit allows stays within what [`super::JOIN_LIMIT`]'s comment states.
    #[test]
    fn the_most_joins_of_the_largest_lists_stay_within_the_stated_peak() {
        let name = "\u{1F600}".repeat(crate::qrs::wire::USER_NAME_CHARS);
        let seats = || {
            (0..200)
                .map(|_| seat(&name, "idle 120 days"))
                .collect::<Vec<_>>()
        };
        let summary = SummaryContext {
            policy: "prod-site".into(),
            run_id: "r1".into(),
            result: "Succeeded".into(),
            dry_run: false,
            message: String::new(),
            reclaimed: seats(),
            warned: seats(),
            failed: seats(),
            counts: SummaryCounts {
                reclaimed: 200,
                warned: 200,
                failed: 200,
            },
            not_listed: SummaryCounts::default(),
            omitted: 0,
        };
        let operands = ["reclaimed", "warned", "failed"]
            .iter()
            .cycle()
            .take(super::JOIN_LIMIT + 1)
            .copied()
            .collect::<Vec<_>>();
        let source = format!("{{% set all = {} %}}done", operands.join(" ~ "));
        let templates = Templates::new(&BTreeMap::from([("summary.txt".to_string(), source)]))
            .expect("accepted");
        let (rendered, peak) = peak_of(|| templates.render("summary", &summary));
        assert_eq!(rendered.expect("renders").text, "done");
        assert!(peak < 32 * MIB, "{} MiB", peak / MIB);
    }

    /// A chain of 100,000 operators, filters or lookups in one tag parses into a tree 100,000 deep: reading it
    /// overflowed the stack of this very thread. Such a tag is refused from its tokens; one at the limit is read.
    #[test]
    fn a_tag_too_long_to_read_is_refused_before_it_is_parsed() {
        let n = 100_000;
        for (what, source) in [
            ("~", format!("{{{{ {}'' }}}}", "user.name ~ ".repeat(n))),
            ("+", format!("{{{{ {}1 }}}}", "1 + ".repeat(n))),
            ("not", format!("{{{{ {}1 }}}}", "not ".repeat(n))),
            ("-", format!("{{{{ {}1 }}}}", "-".repeat(n))),
            (
                "and",
                format!("{{% if {}1 %}}{{% endif %}}", "1 and ".repeat(n)),
            ),
            (
                "filters",
                format!("{{{{ user.name{} }}}}", "|upper".repeat(n)),
            ),
            ("lookups", format!("{{{{ user{} }}}}", ".name".repeat(n))),
            ("items", format!("{{{{ user{} }}}}", "['name']".repeat(n))),
        ] {
            let Err(e) = with(&source) else {
                panic!("{what}: accepted")
            };
            let e = e.to_string();
            assert!(
                e.contains("line 1: a tag of more than 500") && e.contains("not allowed"),
                "{what}: {e}"
            );
        }
        let limit = super::CHAIN_LIMIT;
        let (text, _) = render(&format!("{{{{ {}1 }}}}", "1 + ".repeat(limit)));
        assert_eq!(text.as_deref(), Ok("501"));
        let (text, _) = render(&format!(
            "{{{{ user.name{} }}}}",
            "|lower".repeat(limit - 1)
        ));
        assert_eq!(text.as_deref(), Ok("ann lee"));
    }

    /// minijinja reads each `elif` one level deeper than the last, and nested blocks likewise: 100,000 of either
    /// (a megabyte) overflowed the stack. They are counted on the template's tokens and refused naming the line;
    /// a template at the limits renders.
    #[test]
    fn elif_chains_and_deep_nesting_are_refused_before_they_are_parsed() {
        let n = 100_000;
        let elifs = |n: usize| {
            format!(
                "{{% if 0 %}}{}\n{{% else %}}x{{% endif %}}",
                "{% elif 0 %}".repeat(n)
            )
        };
        let nested = |n: usize| {
            format!(
                "{}\n{}x{}",
                "{% if 1 %}".repeat(n),
                "",
                "{% endif %}".repeat(n)
            )
        };
        for (source, named) in [
            (elifs(n), "line 1: more than 100 `elif` in one template"),
            (
                format!("\n{}", "{% if 0 %}{% elif 0 %}{% endif %}".repeat(n)),
                "line 2: more than 100 `elif`",
            ),
            (nested(n), "line 1: blocks nested more than 32 deep"),
            (
                format!("{}x", "{% for i in [1] %}{% with a = 1 %}".repeat(n)),
                "blocks nested more than 32 deep",
            ),
            (
                format!("{}x", "{% set a %}{% filter upper %}".repeat(n)),
                "blocks nested more than 32 deep",
            ),
        ] {
            let Err(e) = with(&source) else {
                panic!("accepted: {named}")
            };
            let e = e.to_string();
            assert!(
                e.contains(named) && e.contains("not allowed"),
                "{named}: {e}"
            );
        }
        let (text, _) = render(&elifs(super::ELIF_LIMIT));
        assert_eq!(text.as_deref(), Ok("x"));
        let (text, _) = render(&nested(super::DEPTH_LIMIT));
        assert_eq!(text.as_deref(), Ok("\nx"));
        // Blocks one after another, and sets of a value, nest nothing.
        let (text, _) = render(&format!(
            "{}{}",
            "{% if 1 %}{% set a = 1 %}{% endif %}".repeat(1000),
            "{% for i in [1] %}{% if 1 %}y{% endif %}{% endfor %}".repeat(100)
        ));
        assert_eq!(text.map(|t| t.len()), Ok(100));
    }

    /// Forty doublings of a list hold 2^40 items as a comparison sees them, in a few kilobytes: comparing two
    /// such lists would run for days. Sharing a value between list items is refused before anything runs.
    #[test]
    fn lists_that_hold_each_other_are_refused_before_they_grow() {
        let step = "{% set a = [a, a] %}{% set b = [b, b] %}".repeat(40);
        let source = format!("{{% set a = [1] %}}{{% set b = [1] %}}{step}{{{{ a == b }}}}");
        let Err(e) = with(&source) else {
            panic!("accepted")
        };
        assert!(e.to_string().contains("a list or map holding"), "{e}");
    }

    #[test]
    fn what_ordinary_templates_use_still_renders() {
        let (text, _) = render(concat!(
            "{{ user.name|upper }} {{ '-' * 3 }} {{ idle_days + 1 }} {{ missing|default('n/a') }}",
            "{% if idle_days is number %} {{ [user.id, user.email]|join(', ') }}{% endif %}",
            "{% for w in 'a b'|split %} {{ loop.index }}{{ w|capitalize }}{% endfor %}",
            " {{ user.name|replace('Ann', 'Anne') }} {{ [3, 1, 2]|sort|join }}",
        ));
        assert_eq!(
            text.expect("renders"),
            "ANN LEE --- 92 n/a CORP\\ann, ann@example.com 1A 2B Anne Lee 123"
        );
    }

    /// Each variant fails its own rendering with a message, having allocated little.
    #[test]
    fn variants_that_grow_fail_their_message_in_bounded_memory() {
        let doubling = |step: &str| {
            format!(
                "{{% set a = 'xxxxxxxxxxxxxxxx' %}}{}{{{{ a|length }}}}",
                format!("{{% set a = {step} %}}").repeat(40)
            )
        };
        let kilo = "{% set k = 'y' * 1000 %}";
        for (what, source) in [
            ("replace doubling", doubling("a|replace('x', 'xx')")),
            ("join doubling", doubling("[a, a]|join")),
            (
                "replace of every boundary",
                format!("{kilo}{{% set m = k|replace('', k) %}}{{{{ m|replace('', k) }}}}"),
            ),
            (
                "join with a long separator",
                format!("{kilo}{{{{ range(100000)|join(k) }}}}"),
            ),
            ("indent", format!("{kilo}{{{{ k|indent(100000000) }}}}")),
            (
                "a long list summed again and again",
                "{% for i in range(1000) %}{{ range(100000)|sum }}{% endfor %}".into(),
            ),
            (
                "lists built again and again",
                "{% for i in range(100) %}{% set l = range(100000)|list %}{% endfor %}".into(),
            ),
            (
                "output",
                format!(
                    "{kilo}{{% set k = k|replace('y', '{}') %}}{{% for i in range(1000) %}}{{{{ k }}}}{{% endfor %}}",
                    "y".repeat(64)
                ),
            ),
        ] {
            let (rendered, peak) = render(&source);
            let Err(e) = rendered else {
                panic!("{what}: rendered")
            };
            assert!(
                e.contains("notice.txt") && e.contains("limit"),
                "{what}: {e}"
            );
            assert!(peak < 16 * MIB, "{what}: {} MiB", peak / MIB);
        }
    }

    /// minijinja walks text character by character: a filter given a long string walks, and builds, as much as
    /// one given the list of its characters. Each is charged before it runs, so the batch bomb (three million
    /// characters, a batch each: 300 MB) and a walk repeated in a loop fail their message having allocated little.
    #[test]
    fn filters_over_a_long_string_are_charged_as_its_characters() {
        // About three million characters, and a hundred thousand: the second can be walked, not collected.
        let big = r#"{% set big = range(100000)|join("-------------------------") %}"#;
        let mid = r#"{% set mid = range(20000)|join("----") %}"#;
        let each = |filter: &str| {
            [
                format!("{big}{{{{ big|{filter}|length }}}}"),
                format!(
                    "{mid}{{% for i in range(100000) %}}{{{{ mid|{filter}|length }}}}{{% endfor %}}"
                ),
            ]
        };
        let mut sources = Vec::new();
        for filter in [
            "batch(1)",
            "batch(3)",
            "list",
            "sort",
            "reverse",
            "unique",
            "map('upper')",
            "select",
            "reject",
            "selectattr('x')",
            "rejectattr('x')",
            "split('-')",
            "lines",
            "join('x')",
        ] {
            sources.extend(each(filter));
        }
        for filter in ["min", "max", "length", "count"] {
            sources.push(format!(
                "{mid}{{% for i in range(100000) %}}{{{{ mid|{filter} }}}}{{% endfor %}}"
            ));
        }
        sources.push(format!(
            "{mid}{{% for i in range(100000) %}}{{{{ mid is lower }}}}{{% endfor %}}"
        ));
        for source in sources {
            let started = std::time::Instant::now();
            let (rendered, peak) = render(&source);
            let Err(e) = rendered else {
                panic!("{source}: rendered")
            };
            assert!(e.contains("limit"), "{source}: {e}");
            assert!(peak < 16 * MIB, "{source}: {} MiB", peak / MIB);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{source}: {:?}",
                started.elapsed()
            );
        }
        // Lists are reserved for too: a batch of one over a long range holds an object per item.
        let (rendered, peak) = render("{{ range(100000)|batch(1)|length }}");
        assert!(rendered.expect_err("batches").contains("limit"));
        assert!(peak < 4 * MIB, "{} MiB", peak / MIB);
        // What ordinary templates do with text still renders.
        let (text, _) = render(
            "{{ user.name|list|length }} {{ user.name|batch(3)|map('join')|join('/') }} {{ user.id|length }}",
        );
        assert_eq!(text.as_deref(), Ok("7 Ann/ Le/e 8"));
    }

    /// A loop over a string walks its characters one step at a time: the fuel bounds it, however long the text.
    #[test]
    fn a_loop_over_a_long_string_is_bounded_by_the_fuel() {
        let started = std::time::Instant::now();
        let (rendered, peak) = render(concat!(
            r#"{% set big = range(100000)|join("-------------------------") %}"#,
            "{% for i in range(100000) %}{% for c in big %}{% endfor %}{% endfor %}",
        ));
        let e = rendered.expect_err("fuel");
        assert!(e.contains("fuel"), "{e}");
        assert!(peak < 16 * MIB, "{} MiB", peak / MIB);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// In HTML, replace escapes its input when a part is marked safe: a megabyte of `&` becomes five. The size
    /// check counts that before building it.
    #[test]
    fn an_html_replace_is_checked_with_its_escaping() {
        let templates = Templates::new(&BTreeMap::from([(
            "notice.html".to_string(),
            concat!(
                "{% set a = ('&' * 1000)|replace('&', '&' * 1000) %}",
                "{{ a|replace('&', '&'|safe)|length }}"
            )
            .to_string(),
        )]))
        .expect("accepted");
        let (rendered, peak) = peak_of(|| templates.render("notice", &notice()));
        let e = rendered.expect_err("five megabytes").to_string();
        assert!(e.contains("notice.html") && e.contains("limit"), "{e}");
        assert!(peak < 3 * MIB, "{} KiB", peak / 1024);
    }

    #[test]
    fn escaping_is_checked_before_it_grows_the_text() {
        let (rendered, peak) =
            render("{% set a = ('&' * 1000)|replace('&', '&' * 1000) %}{{ a|e|length }}");
        let e = rendered.expect_err("five megabytes");
        assert!(e.contains("limit"), "{e}");
        assert!(peak < 3 * MIB, "{} KiB", peak / 1024);
    }

    #[test]
    fn a_batch_too_large_to_reserve_fails_the_message_without_a_panic() {
        for count in ["10**9", "2**61"] {
            let (rendered, peak) = render(&format!("{{{{ range(10)|batch({count})|length }}}}"));
            let e = rendered.expect_err(count);
            assert!(e.contains("limit"), "{count}: {e}");
            assert!(peak < MIB, "{count}: {peak}");
        }
    }

    #[test]
    fn range_beyond_its_limit_fails_the_message() {
        let (rendered, peak) = render("{{ range(10**9)|list|length }}");
        let e = rendered.expect_err("a billion items");
        assert!(e.contains("too many elements"), "{e}");
        assert!(peak < MIB, "{peak}");
    }
}

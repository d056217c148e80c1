//! While a template renders: the budget each message's filters charge what they build to, the filters wrapped
//! to charge it (and to check the size of what they would build first), and the writer that caps the output.

use super::*;

/// What one list slot costs, whatever it holds (the items themselves are charged when built).
pub(super) const SLOT: usize = std::mem::size_of::<Value>();
/// What a filter walking one item of its input is charged: the budget then allows half a million items walked.
pub(super) const WALK: usize = 8;

/// Filters that turn their input into text: an input that is not a string is turned into text here first,
/// bounded and charged, so the filter never formats a value of unknown size itself.
pub(super) const TEXT_FILTERS: [&str; 11] = [
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
pub(super) const VALUE_FILTERS: [&str; 27] = [
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
pub(super) const GROWING_FILTERS: [&str; 3] = ["replace", "join", "indent"];
/// Tests answer yes or no; the ones on text are given only strings (anything else is not lower case, does not
/// start with anything).
pub(super) const TESTS: [&str; 33] = [
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
pub(super) const TEXT_TESTS: [&str; 4] = ["lower", "upper", "startingwith", "endingwith"];
/// Functions: `range` is lazy and at most 100,000 long; what is built from it is charged.
pub(super) const FUNCTIONS: [&str; 1] = ["range"];

thread_local! {
    /// What the rendering on this thread may still build. Rendering is synchronous, so a filter always runs on
    /// the thread that set the budget; outside a rendering it is 0 and every filter refuses.
    static LEFT: Cell<usize> = const { Cell::new(0) };
}

pub(super) fn too_much() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the template builds more than {} MiB of text and lists for one message (the limit)",
            BUILD_LIMIT >> 20
        ),
    )
}

pub(super) fn left() -> usize {
    LEFT.with(Cell::get)
}

/// Take `bytes` from the budget, or fail the rendering (and leave nothing for the rest of it).
pub(super) fn charge(bytes: usize) -> Result<(), Error> {
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
pub(super) struct Counter {
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
pub(super) fn text_len(value: &Value, cap: usize) -> Option<usize> {
    if let Some(s) = value.as_str() {
        return (s.len() <= cap).then_some(s.len());
    }
    let mut counter = Counter { written: 0, cap };
    fmt::write(&mut counter, format_args!("{value}")).ok()?;
    Some(counter.written)
}

/// Strings, numbers and the like as they are (they exist already); anything else as text, bounded and charged.
pub(super) fn as_text(value: Value) -> Result<Value, Error> {
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
pub(super) fn built(value: &Value) -> usize {
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
pub(super) fn bounded_filter(
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
pub(super) const STRING_WALKS: [&str; 18] = [
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
pub(super) fn walked_items(name: &str, input: &Value) -> Option<usize> {
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
pub(super) const BATCH: usize = 64;

/// The bytes filter `name` reserves for what it builds from `items` items, before it has any: a slot for each
/// item it may keep (two more for each `unique` remembers), the batches and their reserved slots, the pieces
/// `split` and `lines` cut and the text they copy. Some(0) for filters that build no list.
pub(super) fn reserved(name: &str, args: &[Value], items: usize) -> Option<usize> {
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

pub(super) fn fits(len: Option<usize>) -> Result<(), Error> {
    match len {
        Some(len) if len <= left() => Ok(()),
        _ => Err(too_much()),
    }
}

pub(super) fn arg_str(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or("")
}

/// At most what `value|replace(from, to)` makes: every match of `from` (every character boundary if it is
/// empty) becomes `to`, and HTML escaping when a part is marked safe (at most six bytes for one).
pub(super) fn replaced_len(state: &State, args: &[Value]) -> Option<usize> {
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
pub(super) fn escaped(state: &State, len: usize) -> Option<usize> {
    if matches!(state.auto_escape(), AutoEscape::None) {
        Some(len)
    } else {
        len.checked_mul(6)
    }
}

/// At most what `items|join(sep)` makes: each item as text, the separators, and HTML escaping (at most six
/// bytes for one).
pub(super) fn joined_len(state: &State, args: &[Value]) -> Option<usize> {
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
pub(super) fn indented_len(args: &[Value]) -> Option<usize> {
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

pub(super) fn builtin_filter(name: &str) -> Value {
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

pub(super) fn builtin_test(name: &str) -> Value {
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

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

// The names every room below shares (each takes them, and one another's, with `use super::*`): `check.rs`
// refuses before a template is accepted, `joins.rs` is its rule for `~` and `+`, `charge.rs` bounds a rendering.
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

mod charge;
mod check;
mod joins;
#[cfg(test)]
mod tests;

use charge::*;
pub use charge::{CappedOutput, environment, with_budget};
pub use check::refusal;
use check::*;
use joins::*;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::notify::NotifyError;
use crate::notify::templates::{
    NoticeVars, SeatLine, SummaryCounts, SummaryVars, Templates, UserVars,
};
use crate::testing::peak_of;

const MIB: usize = 1 << 20;

fn notice() -> NoticeVars {
    NoticeVars {
        user: UserVars {
            name: "Ann Lee".into(),
            id: "CORP\\ann".into(),
            email: "ann@example.com".into(),
        },
        rule: crate::model::Rule::Idle,
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

/// The error, as text, with which `source` is refused as notice.txt; a panic naming `what` if it is accepted.
fn refused(source: &str, what: impl std::fmt::Display) -> String {
    match with(source) {
        Ok(_) => panic!("accepted: {what}"),
        Err(e) => e.to_string(),
    }
}

/// Render `source` as notice.txt: the text, or the error, and the most it had allocated at once.
fn render(source: &str) -> (Result<String, String>, usize) {
    let templates = with(source).expect("accepted");
    let (rendered, peak) = peak_of(|| templates.render("notice", &notice()));
    (rendered.map(|r| r.text).map_err(|e| e.to_string()), peak)
}

/// [`render`], and how long it took.
fn render_timed(source: &str) -> (Result<String, String>, usize, Duration) {
    let started = Instant::now();
    let (rendered, peak) = render(source);
    (rendered, peak, started.elapsed())
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
        let e = refused(source, source);
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

/// Templates with `source` as summary.txt, which must be accepted.
fn summary_templates(source: &str) -> Templates {
    Templates::new(&BTreeMap::from([(
        "summary.txt".to_string(),
        source.to_string(),
    )]))
    .expect("accepted")
}

/// The summary of a run of prod-site that succeeded, listing these seats and counting each list.
fn summary(reclaimed: Vec<SeatLine>, warned: Vec<SeatLine>, failed: Vec<SeatLine>) -> SummaryVars {
    SummaryVars {
        policy: "prod-site".into(),
        run_id: "r1".into(),
        result: "Succeeded".into(),
        dry_run: false,
        message: String::new(),
        counts: SummaryCounts {
            reclaimed: reclaimed.len() as u64,
            moved: 0,
            warned: warned.len() as u64,
            failed: failed.len() as u64,
        },
        reclaimed,
        moved: Vec::new(),
        warned,
        failed,
        not_listed: SummaryCounts::default(),
        omitted: 0,
    }
}

/// A loop walks the site's data: its variable joins like the data itself, and so does what it keeps of a
/// sorted or selected list, or of a map's items.
#[test]
fn a_loop_over_the_sites_lists_joins_its_items() {
    let reclaimed = vec![
        seat("CORP\\bo", "idle 120 days"),
        seat("CORP\\al", "leaver"),
    ];
    let summary = summary(reclaimed, Vec::new(), Vec::new());
    let source = concat!(
        r#"{% for s in reclaimed %}{{ s.user ~ " " ~ s.reason }}; {% endfor %}"#,
        r#"{% for s in reclaimed|sort(attribute="user") %}{% set line = loop.index ~ ". " ~ s.user %}"#,
        r#"{{ line }} {% endfor %}"#,
        r#"{% for k, v in counts|dictsort %}{{ k ~ "=" ~ v }} {% endfor %}"#,
        r#"{% for u in reclaimed|map(attribute="user") %}{{ u + "," }}{% endfor %}"#,
    );
    let templates = summary_templates(source);
    let text = templates.render("summary", &summary).expect("renders").text;
    assert_eq!(
        text,
        concat!(
            "CORP\\bo idle 120 days; CORP\\al leaver; ",
            "1. CORP\\al 2. CORP\\bo ",
            "failed=0 moved=0 reclaimed=2 warned=0 ",
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
        let e = refused(source, source);
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
        let e = refused(&source, format!("{} bytes", source.len()));
        assert!(
            e.contains("more than 16 `~` and `+` in one template")
                && e.contains("not allowed")
                && e.contains("{{ a }}{{ b }}"),
            "{e}"
        );
    }
    let e = refused(
        &"{{ user.name ~ '' }}\n".repeat(super::JOIN_LIMIT + 1),
        "17 lines",
    );
    assert!(e.contains("line 17:"), "{e}");
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
    let summary = summary(seats(), seats(), seats());
    let operands = ["reclaimed", "warned", "failed"]
        .iter()
        .cycle()
        .take(super::JOIN_LIMIT + 1)
        .copied()
        .collect::<Vec<_>>();
    let source = format!("{{% set all = {} %}}done", operands.join(" ~ "));
    let templates = summary_templates(&source);
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
        let e = refused(&source, what);
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
        let e = refused(&source, named);
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
    let e = refused(&source, "lists that hold each other");
    assert!(e.contains("a list or map holding"), "{e}");
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
        let (rendered, peak, took) = render_timed(&source);
        let Err(e) = rendered else {
            panic!("{source}: rendered")
        };
        assert!(e.contains("limit"), "{source}: {e}");
        assert!(peak < 16 * MIB, "{source}: {} MiB", peak / MIB);
        assert!(took < Duration::from_secs(5), "{source}: {took:?}");
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
    let (rendered, peak, took) = render_timed(concat!(
        r#"{% set big = range(100000)|join("-------------------------") %}"#,
        "{% for i in range(100000) %}{% for c in big %}{% endfor %}{% endfor %}",
    ));
    let e = rendered.expect_err("fuel");
    assert!(e.contains("fuel"), "{e}");
    assert!(peak < 16 * MIB, "{} MiB", peak / MIB);
    assert!(took < Duration::from_secs(5), "{took:?}");
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

//! The memory bound of a render, measured: random templates built from the helpers, the
//! builtins and the operators, over hostile labels (long values, many labels), never allocate
//! more at their peak than [`amrelay::template::peak_bound`]:
//!
//! peak ≤ FUEL × 64 B + 8 × MAX_RENDERED_BYTES + 16 × the notification's size
//!
//! (64 MB of data fuel pays for, a few values at the 8 MiB limit alive at once, the parsed
//! notification). Measured with a counting global allocator, which needs `unsafe impl
//! GlobalAlloc`: the library forbids unsafe code, so this is a test target of its own, one test
//! in it so that no other test's allocations count.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use amrelay::template::{Builder, Reveal, Spec, peak_bound};
use http::HeaderValue;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; only counters are updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as both alive for the moment of the copy: the worst case of a realloc.
            grew(new_size);
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak bytes allocated while `f` runs, above what was in use when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// A string-valued expression of depth `depth`.
fn text(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        (0..8usize).prop_map(|i| format!("commonLabels.l{i}")),
        Just("alerts[0].labels.l0".to_owned()),
        "[a-z&<>\\n ]{0,8}".prop_map(|s| format!("{s:?}")),
        (0..7u32).prop_map(|e| format!("(\"xa\" * {})", 10usize.pow(e))),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = text(depth - 1);
    let list = list(depth - 1);
    let n = || (0..8u32).prop_map(|e| 10u64.pow(e));
    prop_oneof![
        2 => leaf,
        1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ~ {b})")),
        1 => (inner.clone(), inner.clone()).prop_map(|(s, r)| format!("({s} | reReplaceAll(\"a|\", {r}))")),
        1 => (inner.clone(), inner.clone()).prop_map(|(s, r)| format!("({s} | replace(\"a\", {r}))")),
        1 => (inner.clone(), prop_oneof![
            Just("toUpper"), Just("toLower"), Just("upper"), Just("title"), Just("mrkdwn"), Just("trim"),
            Just("sha256"), Just("safeUrl"), Just("toJson"), Just("tojson"), Just("string"), Just("escape"),
        ]).prop_map(|(s, f)| format!("({s} | {f})")),
        1 => (inner.clone(), n()).prop_map(|(s, n)| format!("({s} | clip({n}))")),
        1 => (inner.clone(), n()).prop_map(|(s, n)| format!("({s} | clipBytes({n}))")),
        1 => (inner.clone(), (0..6u32)).prop_map(|(s, e)| format!("({s} | indent({}))", 10usize.pow(e))),
        1 => (inner.clone(), inner.clone()).prop_map(|(f, a)| format!("(\"%s-%s\" | format({f}, {a}))")),
        1 => (list.clone(), inner.clone()).prop_map(|(l, j)| format!("({l} | join({j}))")),
        1 => (list.clone(), n(), inner.clone(), prop_oneof![Just("chars"), Just("bytes"), Just("json")])
            .prop_map(|(l, b, s, u)| format!("({l} | fit(\"line\", {b}, unit=\"{u}\", sep={s}))")),
        1 => list.clone().prop_map(|l| format!("({l} | toJson)")),
        1 => list.clone().prop_map(|l| format!("({l} | tojson(indent=8))")),
        1 => list.clone().prop_map(|l| format!("({l} | pprint)")),
        1 => list.clone().prop_map(|l| format!("({l} | length | string)")),
        1 => (list.clone(), inner.clone()).prop_map(|(l, s)| format!("({s} ~ {l})")),
        1 => (list, inner.clone()).prop_map(|(l, s)| format!("(({l} in {s}) | string)")),
        1 => (0..10u32).prop_map(|e| format!("({} | humanizeDuration)", 10f64.powi(e as i32 * 4))),
        1 => inner.prop_map(|f| format!("(0 | date({f}))")),
    ]
    .boxed()
}

/// A list-valued expression.
fn list(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("alerts".to_owned()),
        (0..6u32).prop_map(|e| format!("range({})", 10usize.pow(e))),
        (0..9u32).prop_map(|e| format!("([\"x\" * 1000] * {})", 10usize.pow(e))),
        Just("(alerts | firing)".to_owned()),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = text(depth - 1);
    prop_oneof![
        2 => leaf,
        1 => inner.clone().prop_map(|s| format!("({s} | split)")),
        1 => inner.clone().prop_map(|s| format!("({s} | lines)")),
        1 => inner.prop_map(|s| format!("({s} | list)")),
        1 => list(depth - 1).prop_map(|l| format!("[{l}, {l}, {l}, {l}]")),
    ]
    .boxed()
}

/// Hostile labels: up to 200 of them, values up to 200 kB of text that the patterns match.
fn labels() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    (0usize..200, 0usize..200_000, "[a&<>\\n\"x]{1,4}").prop_map(|(count, size, unit)| {
        let value = unit.repeat(size / unit.len() + 1);
        (0..count.max(8))
            .map(|i| (format!("l{i}"), json!(if i < 8 { value.clone() } else { format!("v{i}") })))
            .collect()
    })
}

fn notification(labels: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let alert = json!({"status": "firing", "labels": labels, "annotations": {"summary": "s"}});
    json!({"status": "firing", "receiver": "r", "version": "4", "groupKey": "{}", "truncatedAlerts": 0,
           "alerts": [alert.clone(), alert], "groupLabels": {}, "commonLabels": labels,
           "commonAnnotations": {}, "externalURL": "http://am"})
    .to_string()
    .into_bytes()
}

fn render(source: &str, notification: &[u8]) -> Result<usize, String> {
    let mut builder = Builder::new();
    let name = builder.body(source, false).map_err(|e| format!("{source}: {}", e.message))?;
    let renderer = builder.finish(Spec {
        body: Some(name),
        payload: None,
        preset: None,
        options: Vec::new(),
        content_type: HeaderValue::from_static("text/plain"),
        signing: None,
    });
    // Any answer is fine (most of these are render errors); only the memory is checked.
    Ok(renderer.render(notification, Reveal::Send).map_or(0, |r| r.body.len()))
}

/// Random templates over hostile labels stay within `peak_bound`. The first check proves the
/// measure can fail: an allocation just over the bound is seen as over it.
#[test]
fn random_templates_over_hostile_labels_stay_within_the_peak_bound() {
    let (_, seen) = peak_of(|| std::hint::black_box(vec![1u8; peak_bound(0) + 1]));
    assert!(seen > peak_bound(0), "the counting allocator measures: {seen}");

    let mut runner = TestRunner::new(Config { cases: 40, failure_persistence: None, ..Config::default() });
    let strategy = (text(3), labels());
    let most = std::cell::Cell::new((0usize, 0usize));
    runner
        .run(&strategy, |(expression, labels)| {
            let input = notification(&labels);
            let source = format!("{{{{ {expression} }}}}");
            let (result, peak) = peak_of(|| render(&source, &input));
            result.map_err(TestCaseError::fail)?;
            let bound = peak_bound(input.len());
            if peak > most.get().0 {
                most.set((peak, bound));
            }
            prop_assert!(peak <= bound, "peak {peak} > bound {bound} for {source} ({} input bytes)", input.len());
            Ok(())
        })
        .unwrap();
    let (peak, bound) = most.get();
    eprintln!("largest peak: {peak} bytes (its bound: {bound})");
}

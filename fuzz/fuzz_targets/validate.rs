//! `validate` on arbitrary files: the checks must never panic, every
//! diagnostic's byte range must lie inside its file (the caret renderer
//! slices by it), and the three renderings must succeed. Two files: the
//! input split at its first NUL byte, so the cross-file checks run too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virt_pci::validate::{self, render, Inputs, Options, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let mut sources = vec![Source {
        path: "a.xml".into(),
        text: a.to_string(),
    }];
    if !b.is_empty() {
        sources.push(Source {
            path: "b.xml".into(),
            text: b.to_string(),
        });
    }
    let inputs = Inputs::from_sources(sources);
    let report = validate::validate(&inputs, None, Options::default());
    for d in &report.diagnostics {
        let src = inputs.sources.iter().find(|s| s.path == d.file).expect("a diagnostic names its file");
        assert!(
            d.byte_start <= d.byte_end && d.byte_end <= src.text.len(),
            "{}: range {}..{} outside a {}-byte file",
            d.code,
            d.byte_start,
            d.byte_end,
            src.text.len()
        );
    }
    for f in [render::Format::Human, render::Format::Json, render::Format::Github] {
        let _ = render::render(&report, &inputs.sources, f, false);
    }
});

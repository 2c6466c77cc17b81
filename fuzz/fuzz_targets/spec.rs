//! Any bytes given as a Polyaxonfile yield a spec or an error, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use trellis_domain::spec::{Globals, NoFiles, compile, inline_path_refs};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = compile(text, Some("fuzz.yaml"), &NoFiles, &BTreeMap::new(), &Globals::default());
        let _ = inline_path_refs(text, &NoFiles);
    }
});

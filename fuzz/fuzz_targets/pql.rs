//! Any bytes given as a query or a sort yield a filter or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_domain::listing::RunSort;
use trellis_domain::pql::Query;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Query::parse(text);
        let _ = RunSort::parse(Some(text));
    }
});

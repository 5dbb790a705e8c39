//! The listing converter (`snapshot --from-listing`) on arbitrary text:
//! it must never panic, an `Ok` host must survive the snapshot round trip
//! (`to_string` then `parse`), and every name it accepts must be one a fake
//! tree can hold (the converter checks names before they become paths).
#![no_main]

use libfuzzer_sys::fuzz_target;
use virt_pci::host::{fake, listing, snapshot};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(host) = listing::parse(&text, "listing:fuzz") {
        fake::check_names(&host).expect("accepted a name that is not a file name");
        let json = snapshot::to_string(&host);
        let back = snapshot::from_str(&json, std::path::Path::new("fuzz")).expect("our own snapshot reads back");
        assert_eq!(back.devices.len(), host.devices.len());
    }
});

//! The splicer on arbitrary input: `add`, `remove` and the style inference
//! must never panic; an edit's own self-check (`EditError::Internal`) must
//! never fire; `add` is idempotent; and wherever `edit::reversible` says so,
//! `remove` undoes `add` to the byte.
//!
//! Input: two control bytes (how many functions, which bus, options), then
//! the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virt_pci::domain::hostdev::HostdevOptions;
use virt_pci::domain::edit::{self, EditError, Selection};
use virt_pci::{DeviceSpec, PciAddress};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (ctl, rest) = data.split_at(2);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let n = (ctl[0] & 3) as u8 + 1;
    let addrs: Vec<PciAddress> = (0..n)
        .map(|f| PciAddress::new(0, ctl[1], 0x1d, f))
        .collect();
    let opts = HostdevOptions {
        managed: ctl[0] & 4 == 0,
        boot_order: (ctl[0] & 8 != 0).then_some(1),
        alias: (ctl[0] & 16 != 0).then(|| "ua-fuzz".to_string()),
        rom_file: (ctl[0] & 32 != 0).then(|| "/a&b'\"<.rom".to_string()),
        guest_address: (ctl[0] & 64 != 0).then(|| PciAddress::new(0, 1, 2, 0)),
        guest_multifunction: ctl[0] & 128 != 0 && ctl[0] & 64 != 0,
        ..HostdevOptions::default()
    };
    match edit::add(text, &addrs, &opts) {
        Err(EditError::Internal(m)) => panic!("add: {m}"),
        Err(_) => {}
        Ok(e) => {
            // Options for devices already there are refused, so the second
            // add is a plain one: nothing to add, the text unchanged.
            let again = edit::add(&e.text, &addrs, &HostdevOptions::default())
                .expect("add on our own output");
            assert_eq!(again.text, e.text, "add is not idempotent");
            if !e.added.is_empty() {
                let sel =
                    Selection::Only(e.added.iter().map(|a| DeviceSpec::Function(*a)).collect());
                let r = edit::remove(&e.text, &sel).expect("remove what add added");
                if edit::reversible(text) {
                    assert_eq!(r.text, text, "remove did not undo add");
                }
            }
        }
    }
    if let Err(EditError::Internal(m)) = edit::remove(text, &Selection::All) {
        panic!("remove --all: {m}");
    }
});

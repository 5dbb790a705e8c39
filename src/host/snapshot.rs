//! Saved hosts: the whole [`Host`] model as JSON.
//!
//! A snapshot taken on the hypervisor (`virt-pci snapshot -o host.json`) lets
//! CI and laptops plan, generate and validate offline with the same verdicts
//! as on the machine itself. The file carries a format name and version so a
//! future change of the model is detected instead of misread. The schema is
//! `schemas/snapshot.schema.json`.

use super::{Host, HostFacts, Provenance};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "virt-pci-snapshot";
/// Version 2 added `facts` (where the host-critical facts come from).
/// Version 1 files are still read; see [`facts_of_version_1`].
pub const VERSION: u32 = 2;

/// The largest snapshot read: 256 MiB, room for ~400,000 functions
/// (a snapshot holds ~600 bytes per function); anything larger is refused
/// before it is read.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The document as [`to_string`] writes it (reading goes through [`Head`]
/// and [`Host`] instead: see [`from_str`]).
#[derive(Serialize)]
struct Envelope {
    format: String,
    version: u32,
    #[serde(flatten)]
    host: Host,
}

#[derive(Debug)]
pub struct SnapshotError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.path.display(), self.message)
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Serialize a host as a snapshot document (pretty JSON, trailing newline).
pub fn to_string(host: &Host) -> String {
    let env = Envelope {
        format: FORMAT.into(),
        version: VERSION,
        host: host.clone(),
    };
    let mut s = serde_json::to_string_pretty(&env).unwrap_or_default();
    s.push('\n');
    s
}

/// Parse a snapshot document.
///
/// One pass over the text, straight into the [`Host`] ([`Document`]): the
/// envelope's two fields and the ids of the groups are taken on the way.
/// Only when that read fails is the text read again, for its shape only
/// ([`Head`]), so that a bad document gets the message it always got, in
/// the same order: malformed JSON first, then a wrong format, then a wrong
/// version, then whatever the host's fields have wrong. A
/// `serde_json::Value` of the document, an envelope with
/// `#[serde(flatten)]` (which buffers the document in serde's `Content`),
/// or a first pass for the envelope on every read cost from a quarter to
/// four times as much on a fleet of snapshots (BENCHMARKS.md "fleet").
pub fn from_str(text: &str, path: &Path) -> Result<Host, SnapshotError> {
    let err = |e: serde_json::Error| SnapshotError {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let doc: Document = match serde_json::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let head: Head = serde_json::from_str(text).map_err(err)?;
            check_format(head.format.as_ref(), path)?;
            check_version(head.version.as_ref(), path)?;
            return Err(err(e));
        }
    };
    check_format(doc.format.as_ref(), path)?;
    let version = check_version(doc.version.as_ref(), path)?;
    let mut host = doc.host;
    if version == 1 {
        host.facts = facts_of_version_1(&host);
    }
    // A group id listed twice: the later list replaced the earlier one while
    // reading, so the group's membership is not known.
    for id in doc.repeated_groups {
        host.facts.inconsistent_groups.insert(
            id,
            format!("{} lists IOMMU group {id} more than once", path.display()),
        );
    }
    host.check_group_consistency();
    host.link_groups();
    Ok(host)
}

fn check_format(f: Option<&serde_json::Value>, path: &Path) -> Result<(), SnapshotError> {
    match f.and_then(|f| f.as_str()) {
        Some(FORMAT) => Ok(()),
        other => Err(SnapshotError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!(
                "not a virt-pci snapshot (format is {}, expected \"{FORMAT}\"); make one with `virt-pci snapshot -o FILE`",
                other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
            ),
        }),
    }
}

/// The version this virt-pci reads, or what is wrong with it: the value as
/// written (`"1"`, `1.0`, `-1`), never a default of 0.
fn check_version(v: Option<&serde_json::Value>, path: &Path) -> Result<u64, SnapshotError> {
    let bad_version = |message: String| SnapshotError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    match v {
        Some(x) if x.as_u64() == Some(u64::from(VERSION)) || x.as_u64() == Some(1) => {
            Ok(x.as_u64().unwrap_or(0))
        }
        None => Err(bad_version(format!(
            "the snapshot has no \"version\" (this virt-pci reads versions 1 and {VERSION})"
        ))),
        Some(x) if x.is_number() => Err(bad_version(format!(
            "snapshot version {} is not supported (this virt-pci reads versions 1 and {VERSION})",
            crate::text::shorten(&x.to_string())
        ))),
        Some(x) => Err(bad_version(format!(
            "snapshot version {} is not a number (this virt-pci reads versions 1 and {VERSION}, written as a number)",
            crate::text::shorten(&x.to_string())
        ))),
    }
}

/// The second read, for a document [`Document`] could not read: what it
/// says its format and version are. Any JSON document reads (a key given
/// twice counts as its last value, as in a `serde_json::Value`); everything
/// else in it is only checked to be JSON.
#[derive(Default)]
struct Head {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// A value read for its shape: objects through `map`, arrays through `seq`,
/// anything else is `Default`. The defaults skip what they are given, the
/// way a `serde_json::Value` reads it (so a malformed document gets the
/// same message: serde's `IgnoredAny` says "expected value" where a
/// `Value` says "trailing comma"), without keeping any of it.
trait Shaped<'de>: Default {
    fn map<A: MapAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        while a.next_key::<Shape<Skip>>()?.is_some() {
            a.next_value::<Shape<Skip>>()?;
        }
        Ok(Self::default())
    }
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        while a.next_element::<Shape<Skip>>()?.is_some() {}
        Ok(Self::default())
    }
}

/// Any value, read and dropped.
#[derive(Default)]
struct Skip;

impl Shaped<'_> for Skip {}

impl<'de> Shaped<'de> for Head {
    fn map<A: MapAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        let mut h = Head::default();
        while let Some(k) = a.next_key::<Key>()? {
            match k.0 {
                Some("format") => h.format = Some(a.next_value()?),
                Some("version") => h.version = Some(a.next_value()?),
                _ => {
                    a.next_value::<Shape<Skip>>()?;
                }
            }
        }
        Ok(h)
    }
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Shape::<Head>::deserialize(d).map(|s| s.0)
    }
}

struct Shape<T>(T);

impl<'de, T: Shaped<'de>> Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Shaped<'de>> Visitor<'de> for V<T> {
            type Value = Shape<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::map(a).map(Shape)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::seq(a).map(Shape)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Shape(T::default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The one pass: the envelope's two fields (each as any JSON value, the
/// last of a repeated one counting, as [`Head`] reads them) and the host's
/// fields, read as `#[derive(Deserialize)]` on [`Host`] reads them (same
/// defaults, same "missing field" and "duplicate field" messages, unknown
/// keys skipped), with the group ids that were given more than once.
struct Document {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
    host: Host,
    repeated_groups: Vec<u32>,
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Document;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("struct Host")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Document, A::Error> {
                use serde::de::Error;
                let (mut format, mut version) = (None, None);
                let (mut source, mut provenance, mut iommu, mut devices) = (None, None, None, None);
                let (mut groups, mut usb, mut domains, mut facts) = (None, None, None, None);
                fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
                    slot: &mut Option<T>,
                    a: &mut A,
                    name: &'static str,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(A::Error::duplicate_field(name));
                    }
                    *slot = Some(a.next_value()?);
                    Ok(())
                }
                while let Some(k) = a.next_key::<Key>()? {
                    match k.0 {
                        Some("format") => format = Some(a.next_value()?),
                        Some("version") => version = Some(a.next_value()?),
                        Some("source") => once(&mut source, &mut a, "source")?,
                        Some("provenance") => once(&mut provenance, &mut a, "provenance")?,
                        Some("iommu") => once(&mut iommu, &mut a, "iommu")?,
                        Some("devices") => once(&mut devices, &mut a, "devices")?,
                        Some("groups") => once(&mut groups, &mut a, "groups")?,
                        Some("usb") => once(&mut usb, &mut a, "usb")?,
                        Some("domains") => once(&mut domains, &mut a, "domains")?,
                        Some("facts") => once(&mut facts, &mut a, "facts")?,
                        _ => {
                            a.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let source = source.ok_or_else(|| A::Error::missing_field("source"))?;
                let iommu = iommu.ok_or_else(|| A::Error::missing_field("iommu"))?;
                let devices: super::DeviceTable =
                    devices.ok_or_else(|| A::Error::missing_field("devices"))?;
                let groups: super::GroupTable =
                    groups.ok_or_else(|| A::Error::missing_field("groups"))?;
                Ok(Document {
                    format,
                    version,
                    repeated_groups: groups.repeated,
                    host: Host {
                        source,
                        provenance: provenance.unwrap_or_default(),
                        iommu,
                        devices: devices.0,
                        groups: groups.groups,
                        usb: usb.unwrap_or_default(),
                        domains: domains.unwrap_or_default(),
                        facts: facts.unwrap_or_default(),
                        invocation: None,
                    },
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, kept only when it is one the readers look for (the
/// others are not allocated).
struct Key(Option<&'static str>);

/// The keys [`Head`] and [`Document`] look for.
const KEYS: [&str; 10] = [
    "format",
    "version",
    "groups",
    "source",
    "provenance",
    "iommu",
    "devices",
    "usb",
    "domains",
    "facts",
];

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<Key, E> {
                Ok(Key(KEYS.into_iter().find(|k| *k == s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Version 1 snapshots carry no provenance. Those made on a host by
/// `virt-pci snapshot` (source `sysfs:…`) measured everything; those made
/// from a listing (source `listing:…`) may hold flags the old converter
/// inferred by rules of thumb, so their facts are *assumed*; anything else
/// (libvirt) is unknown.
pub fn facts_of_version_1(host: &Host) -> HostFacts {
    if host.source.starts_with("sysfs:") {
        HostFacts::measured()
    } else if host.source.starts_with("listing:") {
        HostFacts {
            root_filesystem: Provenance::Assumed,
            default_route: Provenance::Assumed,
            boot_vga: Provenance::Assumed,
            drivers: Provenance::Unknown,
            ..HostFacts::default()
        }
    } else {
        HostFacts::default()
    }
}

/// Read a snapshot file.
pub fn load(path: &Path) -> Result<Host, SnapshotError> {
    // `-`: the snapshot comes on stdin (`ssh host virt-pci snapshot |
    // virt-pci --snapshot - list`), as a domain does for `add -`.
    let stdin = path.as_os_str() == "-";
    let shown = if stdin { Path::new("<stdin>") } else { path };
    let fail = |message: String| SnapshotError {
        path: shown.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    let bytes = if stdin {
        let mut b = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin().lock(), MAX_BYTES + 1),
            &mut b,
        )
        .map_err(|e| fail(format!("cannot read the snapshot: {e}")))?;
        if b.len() as u64 > MAX_BYTES {
            return Err(fail(format!("larger than {MAX_BYTES} bytes")));
        }
        b
    } else {
        crate::fsutil::read_any_limited(path, MAX_BYTES)
            .map_err(|e| fail(format!("cannot read the snapshot: {e}")))?
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    let mut h = from_str(&text, shown)?;
    if h.source.is_empty() {
        h.source = format!("snapshot:{}", shown.display());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_version_is_reported_as_written() {
        for (v, shown) in [("\"1\"", "\"1\""), ("1.0", "1.0"), ("-1", "-1"), ("3", "3")] {
            let t = format!("{{\"format\":\"{FORMAT}\",\"version\":{v}}}");
            let e = from_str(&t, Path::new("s.json")).unwrap_err();
            assert!(
                e.message.contains(&format!("version {shown} ")),
                "{v}: {}",
                e.message
            );
            assert!(!e.message.contains("version 0"), "{}", e.message);
        }
        let t = format!("{{\"format\":\"{FORMAT}\"}}");
        let e = from_str(&t, Path::new("s.json")).unwrap_err();
        assert!(e.message.contains("no \"version\""), "{}", e.message);
    }

    /// The first pass reads keys as a `serde_json::Value` would: anywhere
    /// in the object, the last of a repeated key, nothing from non-objects.
    #[test]
    fn the_envelope_and_group_ids_are_read_as_written() {
        let p = Path::new("s.json");
        for t in ["[1]", "\"x\"", "null", "{}", "{\"format\":1}"] {
            let e = from_str(t, p).unwrap_err();
            assert!(
                e.message.contains("format is missing"),
                "{t}: {}",
                e.message
            );
        }
        let t = format!("{{\"format\":\"{FORMAT}\",\"version\":2,\"format\":\"other\"}}");
        let e = from_str(&t, p).unwrap_err();
        assert!(e.message.contains("format is \"other\""), "{}", e.message);
        let doc = |groups: &str| {
            format!(
                "{{\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":[],\"groups\":{groups},\"version\":2,\"format\":\"{FORMAT}\"}}"
            )
        };
        let h = from_str(
            &doc("[{\"members\":[],\"id\":3},{\"id\":3,\"members\":[]}]"),
            p,
        )
        .unwrap();
        assert_eq!(
            h.facts.inconsistent_groups.get(&3).map(String::as_str),
            Some("s.json lists IOMMU group 3 more than once")
        );
        let h = from_str(
            &doc("[{\"id\":3,\"members\":[]},{\"id\":4,\"members\":[]}]"),
            p,
        )
        .unwrap();
        assert!(h.facts.inconsistent_groups.is_empty());
        // Malformed JSON anywhere is an error with its position.
        let e = from_str(&doc("[{\"id\":3,\"members\":[}]"), p).unwrap_err();
        assert!(e.line == 1 && e.column > 0, "{e}");
        let e = from_str(&doc("[{\"id\":3,\"members\":[\"a\",]}]"), p).unwrap_err();
        assert!(e.message.starts_with("trailing comma"), "{e}");
    }

    /// [`Document`] reads the host's fields as `#[derive(Deserialize)]` on
    /// [`Host`] does: the same value or the same message at the same place.
    #[test]
    fn the_one_pass_reads_the_host_as_the_derived_reader_does() {
        let p = Path::new("s.json");
        let env = format!("\"format\":\"{FORMAT}\",\"version\":2");
        let good = "\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":[{\"address\":\"0000:01:00.0\",\"vendor_id\":\"0x10de\",\"device_id\":\"0x1e84\",\"class\":\"0x030000\",\"driver\":null,\"iommu_group\":1}],\"groups\":[{\"id\":1,\"members\":[\"0000:01:00.0\"]}]";
        for body in [
            good.to_string(),
            format!("{good},\"usb\":[],\"domains\":[],\"provenance\":[\"x\"],\"extra\":{{\"a\":[1]}}"),
            "\"iommu\":\"enabled\",\"devices\":[],\"groups\":[]".into(),
            "\"source\":\"t\",\"devices\":[],\"groups\":[]".into(),
            "\"source\":\"t\",\"iommu\":\"enabled\",\"groups\":[]".into(),
            "\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":[]".into(),
            format!("{good},\"source\":\"u\""),
            format!("{good},\"groups\":[]"),
            format!("{good},\"facts\":{{}},\"facts\":{{}}"),
            "\"source\":1,\"iommu\":\"enabled\",\"devices\":[],\"groups\":[]".into(),
            "\"source\":\"t\",\"iommu\":\"maybe\",\"devices\":[],\"groups\":[]".into(),
            "\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":{},\"groups\":[]".into(),
            "\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":[],\"groups\":[{\"id\":-1,\"members\":[]}]".into(),
            "\"source\":\"t\",\"iommu\":\"enabled\",\"devices\":[{\"address\":\"0000:01:00.9\"}],\"groups\":[]".into(),
        ] {
            let text = format!("{{{env},{body}}}");
            let derived = serde_json::from_str::<Host>(&text).map_err(|e| (e.line(), e.column(), e.to_string()));
            let ours = serde_json::from_str::<Document>(&text).map(|d| d.host).map_err(|e| (e.line(), e.column(), e.to_string()));
            assert_eq!(ours, derived, "{body}");
            // and through the whole reader, with the host's checks after it
            match (from_str(&text, p), derived) {
                (Ok(_), Ok(_)) => {}
                (Err(e), Err((line, column, message))) => {
                    assert_eq!((e.line, e.column, e.message), (line, column, message))
                }
                (a, b) => panic!("{body}: {a:?} against {b:?}"),
            }
        }
    }

    /// A document wrong in several ways gets the message it got from the
    /// two-pass reader: JSON first, then format, then version, then fields.
    #[test]
    fn a_bad_document_gets_its_first_error_in_the_old_order() {
        let p = Path::new("s.json");
        let bad_fields = "\"source\":1,\"devices\":{}";
        let e = from_str(
            &format!("{{\"format\":\"x\",\"version\":2,{bad_fields}}}"),
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("format is \"x\""), "{e}");
        let e = from_str(
            &format!("{{\"format\":\"{FORMAT}\",\"version\":9,{bad_fields}}}"),
            p,
        )
        .unwrap_err();
        assert!(e.message.contains("version 9 is not supported"), "{e}");
        let e = from_str(
            &format!("{{\"format\":\"{FORMAT}\",\"version\":2,{bad_fields}}}"),
            p,
        )
        .unwrap_err();
        assert!(e.message.starts_with("invalid type: integer `1`"), "{e}");
        let e = from_str(&format!("{{\"format\":\"x\",{bad_fields},]"), p).unwrap_err();
        assert!(
            e.line == 1 && e.column > 0 && !e.message.contains("format"),
            "{e}"
        );
    }
}

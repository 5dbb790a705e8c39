//! `add/remove --domain NAME [--live]`: how an edited domain goes back to
//! libvirt.
//!
//! WHY this order: the persistent definition is what survives a restart, so
//! it changes first and whole, validated by libvirt
//! (`VIR_DOMAIN_DEFINE_VALIDATE`, [`Conn::redefine`] refuses a rename).
//! Only then, with `--live` on a running domain, each changed `<hostdev>`
//! is hot-plugged or unplugged with `VIR_DOMAIN_AFFECT_LIVE` alone:
//! `AFFECT_CONFIG` again would add the device to the definition a second
//! time (libvirt: "Hostdev already exists"). A failed hot-plug leaves the
//! new definition in place (the guest picks it up at its next start), and
//! the error says so through [`CommitError::defined`].

use super::{Conn, Impact, LibvirtError};

/// Which way `--live` changes the running domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `add`: hot-plug.
    Attach,
    /// `remove`: hot-unplug.
    Detach,
}

/// What [`commit_edit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The new XML equals the old: nothing was defined.
    Unchanged,
    /// Defined; `--live` was not asked for.
    Defined,
    /// Defined; `--live` was asked for but the domain is not running.
    DefinedNotRunning,
    /// Defined, and this many devices changed on the running domain.
    DefinedAndLive(usize),
}

/// A step of [`commit_edit`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitError {
    /// The persistent definition was changed before the failure.
    pub defined: bool,
    pub error: LibvirtError,
}

/// Redefine `name` with `new_xml` (unless it equals `old_xml`), then with
/// `live` hot-plug or unplug each of `devices` (`<hostdev>` elements) on the
/// running domain, in the order the module docs give.
pub fn commit_edit(
    conn: &Conn,
    name: &str,
    old_xml: &str,
    new_xml: &str,
    devices: &[String],
    change: Change,
    live: bool,
) -> Result<Committed, CommitError> {
    if new_xml == old_xml {
        return Ok(Committed::Unchanged);
    }
    conn.redefine(name, new_xml).map_err(|error| CommitError {
        defined: false,
        error,
    })?;
    if !live {
        return Ok(Committed::Defined);
    }
    let after = |error| CommitError {
        defined: true,
        error,
    };
    if !conn.domain(name).map_err(after)?.running {
        return Ok(Committed::DefinedNotRunning);
    }
    for d in devices {
        match change {
            Change::Attach => conn.attach_device(name, d, Impact::LIVE),
            Change::Detach => conn.detach_device(name, d, Impact::LIVE),
        }
        .map_err(after)?;
    }
    Ok(Committed::DefinedAndLive(devices.len()))
}

/// Through libvirt's test driver (`test:///default`: a running domain
/// `test`; the driver defines domains but cannot hot-plug).
#[cfg(test)]
#[cfg(feature = "libvirt")]
mod tests {
    use super::*;

    const HD: &str = "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>";

    /// The domain's XML, and it with a hostdev on `bus`.
    fn edited(conn: &Conn, name: &str, bus: &str) -> (String, String) {
        let old = conn.domain_xml_inactive(name).unwrap();
        let hd = HD.replace("bus='0x01'", &format!("bus='{bus}'"));
        let new = old.replacen("</devices>", &format!("{hd}</devices>"), 1);
        (old, new)
    }

    #[test]
    fn defines_first_then_plugs_live_only_on_a_running_domain() {
        let conn = super::super::open(Some("test:///default"), false).unwrap();
        let (old, new) = edited(&conn, "test", "0x01");
        let dev = [HD.to_string()];
        assert_eq!(
            commit_edit(&conn, "test", &old, &old, &dev, Change::Attach, true),
            Ok(Committed::Unchanged)
        );
        // The test driver cannot hot-plug: the failure comes after the
        // definition, and says so.
        let e = commit_edit(&conn, "test", &old, &new, &dev, Change::Attach, true).unwrap_err();
        assert!(e.defined);
        assert!(e.error.is_not_supported(), "{e:?}");
        assert!(conn
            .domain_xml_inactive("test")
            .unwrap()
            .contains("bus='0x01'"));
        // Without --live the definition is all.
        let (old, new) = edited(&conn, "test", "0x02");
        assert_eq!(
            commit_edit(&conn, "test", &old, &new, &dev, Change::Attach, false),
            Ok(Committed::Defined)
        );
        // A rename is refused before anything is defined.
        let renamed = new.replace("<name>test</name>", "<name>other</name>");
        let e = commit_edit(&conn, "test", &old, &renamed, &dev, Change::Attach, true).unwrap_err();
        assert!(!e.defined);
    }
}

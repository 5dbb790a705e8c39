//! What the many-host commands (`inventory`, `map check`, `place`,
//! `retarget`) share on the command line: reading HOST arguments, the
//! mapping file, and the source host named by the usual host options.

use super::{CliError, Context};
use std::path::Path;
use virt_pci::diagnostic::Located;
use virt_pci::fleet::{self, mapping, FleetError, FleetHost, Origin};
use virt_pci::invocation::HostSource;
use virt_pci::Host;

impl From<FleetError> for CliError {
    fn from(e: FleetError) -> Self {
        let mut c = CliError::usage(e.message);
        c.help = e.help.into_iter().filter(|h| !h.is_empty()).collect();
        c
    }
}

/// Whether any HOST argument is a libvirt URI (the companion decides on it).
pub(super) fn any_uri(hosts: &[String]) -> bool {
    hosts.iter().any(|h| fleet::is_uri(fleet::split_name(h).1))
}

/// Read the HOST arguments.
pub(super) fn load_hosts(ctx: &Context, hosts: &[String]) -> Result<Vec<FleetHost>, CliError> {
    let sources = fleet::sources(hosts)?;
    let read = |uri: &str| libvirt_host(ctx, uri);
    Ok(fleet::load(sources, &read)?)
}

/// Read the HOST arguments one by one (on all cores) and ask `f` about each.
pub(super) fn map_hosts<R: Send>(
    ctx: &Context,
    hosts: &[String],
    f: &(dyn Fn(FleetHost) -> R + Sync),
) -> Result<Vec<R>, CliError> {
    let sources = fleet::sources(hosts)?;
    let read = |uri: &str| libvirt_host(ctx, uri);
    Ok(fleet::map_hosts(sources, &read, f)?)
}

fn libvirt_host(ctx: &Context, uri: &str) -> Result<Host, FleetError> {
    let to_fleet = |e: CliError| FleetError {
        message: format!("{uri}: {}", e.message),
        help: e.help,
    };
    let conn = ctx.libvirt(Some(uri), true).map_err(to_fleet)?;
    ctx.read_libvirt_host(&conn).map_err(to_fleet)
}

/// Read a mapping file, errors in rustc's shape with the file position.
pub(super) fn load_mapping(path: &Path) -> Result<mapping::Mapping, CliError> {
    mapping::load(path).map_err(|e| {
        let mut c = CliError::usage(e.message);
        if e.line > 0 {
            c = c.in_file(Located::in_file(&e.path, e.line as u32, e.column as u32));
        }
        if let Some(h) = e.help {
            c = c.help(h);
        }
        c
    })
}

/// The host the usual host options name (`--snapshot`, `--root`, `-c`,
/// this machine) as a fleet host, named by `name` or after its source.
pub(super) fn source_host(ctx: &Context, name: Option<&str>) -> Result<FleetHost, CliError> {
    let host = ctx.host()?;
    let (default, origin) = match &ctx.inv.host {
        HostSource::Snapshot(p) => (
            fleet::default_name(&p.to_string_lossy()),
            Origin::Snapshot(p.clone()),
        ),
        HostSource::Root(r) => (
            r.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "root".into()),
            // A tree read through sysfs carries measured facts.
            Origin::Snapshot(r.clone()),
        ),
        HostSource::Libvirt(u) => (fleet::default_name(u), Origin::Libvirt(u.clone())),
        HostSource::ThisMachine | HostSource::None => (
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into()),
            Origin::Snapshot("/".into()),
        ),
    };
    Ok(FleetHost {
        name: name.map(str::to_string).unwrap_or(default),
        origin,
        host,
    })
}

/// Whether the usual host options name a host at all.
pub(super) fn has_source(ctx: &Context) -> bool {
    ctx.inv.host != HostSource::None
}

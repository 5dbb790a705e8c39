//! `add/remove --domain NAME`: the domain's persistent XML in, a validated
//! redefine out ([`virt_pci::libvirt::commit_edit`] holds the order), and
//! libvirt's persistent XML read back for `--json` (libvirt adds the guest
//! addresses it assigns, so the definition is the truth, not our text).

use super::edit::{DomainArgs, Input};
use super::{CliError, Context};
use virt_pci::domain::edit::Edit;
use virt_pci::libvirt::{commit_edit, Change, Committed};

/// `--domain NAME`: the domain's persistent XML in, a validated redefine
/// out ([`virt_pci::libvirt::commit_edit`] holds the order).
pub(super) struct DomainSession {
    name: String,
    live: bool,
    conn: virt_pci::libvirt::Conn,
}

impl DomainSession {
    pub(super) fn open(ctx: &Context, t: &DomainArgs) -> Result<Option<DomainSession>, CliError> {
        let Some(name) = &t.domain else {
            return Ok(None);
        };
        let conn = ctx
            .libvirt(ctx.domains_uri().as_deref(), false)
            .map_err(|e| e.code(2))?;
        Ok(Some(DomainSession {
            name: name.clone(),
            live: t.live,
            conn,
        }))
    }

    pub(super) fn input(&self) -> Result<Input, CliError> {
        let text = self
            .conn
            .domain_xml_inactive(&self.name)
            .map_err(|e| super::libvirt_error(e).code(2))?;
        Ok(Input::unlocked(format!("domain:{}", self.name), text))
    }

    /// Redefine with the edited XML, then (with --live, on a running
    /// domain) hot-plug or unplug each changed device; say what was done.
    /// Returns whether the domain was defined.
    pub(super) fn commit(
        &self,
        ctx: &Context,
        input: &Input,
        edit: &Edit,
        devices: &[String],
        change: Change,
    ) -> Result<bool, CliError> {
        let r = commit_edit(
            &self.conn,
            &self.name,
            &input.text,
            &edit.text,
            devices,
            change,
            self.live,
        );
        let defined = match &r {
            Ok(c) => *c != Committed::Unchanged,
            Err(e) => e.defined,
        };
        if defined {
            eprintln!("defined {} (validated by libvirt)", input.name);
        }
        match r.map_err(|e| {
            let c = super::libvirt_error(e.error);
            if e.defined && self.live {
                c.help("the persistent definition is already changed; the running domain picks it up at its next start")
            } else {
                c
            }
        })? {
            // Already said: "nothing to add; domain:NAME is unchanged".
            Committed::Unchanged | Committed::Defined => {}
            Committed::DefinedNotRunning => eprintln!(
                "{}{} {} is not running; --live has nothing to change",
                ctx.err.yellow("note"),
                ctx.err.bold(":"),
                self.name
            ),
            Committed::DefinedAndLive(n) => eprintln!(
                "{} {n} device{} on the running domain",
                if change == Change::Attach {
                    "hot-plugged"
                } else {
                    "unplugged"
                },
                if n == 1 { "" } else { "s" }
            ),
        }
        Ok(defined)
    }
}

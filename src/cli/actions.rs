//! `detach`, `reattach`, `reset`, `check`, `prepare`, `release`: acting on
//! devices through libvirt's node-device APIs or sysfs. Parsing and printing
//! only: the plans, safety rules and the executor are in
//! `virt_pci::actions`.

use super::{parse_specs, print_json, CliError, CliResult, Context};
use clap::{Args as ClapArgs, ValueEnum};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use virt_pci::actions::{
    self, check, Action, ActionOptions, ActionPlan, Backend, Outcome, Setup, SetupError,
};
use virt_pci::address::{DeviceSpec, PciAddress};
use virt_pci::diagnostic::Located;
use virt_pci::host::Host;
use virt_pci::plan::Verdict;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum BackendChoice {
    /// libvirt when built with it and a connection opens, else sysfs.
    Auto,
    /// libvirt's node-device API (virNodeDeviceDetachFlags, ReAttach, Reset).
    Libvirt,
    /// driver_override, unbind, drivers_probe and reset writes (under --root when given).
    Sysfs,
}

#[derive(ClapArgs, Debug)]
pub(super) struct DetachArgs {
    #[command(flatten)]
    pub(super) common: DeviceActionArgs,
    /// The stub driver, in libvirt's words (`vfio` = vfio-pci).
    #[arg(long, default_value = "vfio", value_name = "NAME")]
    driver: String,
    #[command(flatten)]
    pub(super) persist: super::persist::PersistOpts,
}

#[derive(ClapArgs, Debug)]
pub(super) struct ReattachArgs {
    #[command(flatten)]
    pub(super) common: DeviceActionArgs,
    #[command(flatten)]
    pub(super) persist: super::persist::PersistOpts,
}

#[derive(ClapArgs, Debug, Clone)]
pub(super) struct ActOpts {
    /// How to act on devices.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto, value_name = "BACKEND")]
    pub(super) backend: BackendChoice,
    /// Act even on host-critical devices and groups (never on devices a
    /// running domain uses).
    #[arg(long)]
    pub(super) force: bool,
    /// Print what would be done, do nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// Print the plan (and the outcome) as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(ClapArgs, Debug)]
pub(super) struct DeviceActionArgs {
    /// Devices in any form: 01:00.0, 0000:01:00.0, pci_0000_01_00_0, 01:00 (all functions), 10de:1c82.
    #[arg(required = true, value_name = "DEVICE")]
    pub(super) devices: Vec<String>,
    /// Only the named functions, not the rest of their IOMMU groups.
    #[arg(long)]
    pub(super) no_strict_group: bool,
    #[command(flatten)]
    pub(super) act: ActOpts,
}

#[derive(ClapArgs, Debug)]
pub(super) struct CheckArgs {
    /// The device, in any address form.
    #[arg(value_name = "DEVICE")]
    device: String,
    /// Detach the whole group, reset it, and put it back where it was.
    #[arg(long = "try")]
    try_it: bool,
    #[command(flatten)]
    pub(super) act: ActOpts,
}

#[derive(ClapArgs, Debug)]
pub(super) struct DomainActionArgs {
    /// A libvirt domain name (with -c), or a domain XML file.
    #[arg(value_name = "DOMAIN")]
    domain: String,
    #[command(flatten)]
    pub(super) act: ActOpts,
}

#[derive(ClapArgs, Debug)]
pub(super) struct ReleaseArgs {
    #[command(flatten)]
    pub(super) common: DomainActionArgs,
    /// Also return functions that have no reset method to the host (they may
    /// carry what the guest left in them; by default they stay on vfio-pci).
    #[arg(long)]
    return_unreset: bool,
}

/// The backend the invocation chose and the host it acts on
/// ([`actions::setup`] decides); its warnings printed. `read_only`: nothing
/// will be executed (plain `check`), so a read-only connection is enough.
fn setup(ctx: &Context, read_only: bool) -> Result<Setup, CliError> {
    let s = actions::setup(&ctx.inv, read_only, &|| ctx.host()).map_err(|e| match e {
        SetupError::NoBackend => CliError::usage("this command does not act on devices"),
        SetupError::Host(e) => e,
        SetupError::Libvirt(e) => super::libvirt_error(e),
    })?;
    for w in &s.warnings {
        eprintln!("{}: {w}", ctx.err.yellow("warning"));
    }
    Ok(s)
}

fn resolve(host: &Host, specs: &[DeviceSpec]) -> Result<Vec<PciAddress>, CliError> {
    Ok(host.resolve_all(specs)?)
}

fn options(act: &ActOpts, strict_group: bool, driver: &str) -> ActionOptions {
    ActionOptions {
        strict_group,
        force: act.force,
        driver: driver.to_string(),
    }
}

fn print_plan(ctx: &Context, ap: &ActionPlan) {
    let s = &ctx.out;
    let verb = if ap.steps.is_empty() {
        "nothing to do".to_string()
    } else {
        format!("{} step(s)", ap.steps.len())
    };
    // What the plan is for: the devices, else the domain (`prepare vm1`),
    // never an empty list.
    let mut subject: Vec<String> = ap.domain.iter().map(|d| format!("`{d}`")).collect();
    subject.extend(ap.requested.iter().map(|a| a.to_string()));
    let subject = if subject.is_empty() {
        String::new()
    } else {
        format!(" {}", subject.join(" "))
    };
    outln!(
        "{}{subject}: {verb}, backend {}",
        s.bold(ap.action.as_str()),
        ap.backend
    );
    for (i, st) in ap.steps.iter().enumerate() {
        outln!(
            "  {}. {} {} ({})",
            i + 1,
            st.op,
            s.bold(&st.address.to_string()),
            st.why
        );
        for c in &st.calls {
            outln!("       {}", s.dim(c));
        }
    }
    for k in &ap.skipped {
        outln!("  - {} {}: {}", s.dim("skip"), k.address, k.reason);
    }
    let mut helped: Vec<&str> = Vec::new();
    for w in &ap.warnings {
        outln!("  {}: {}", s.yellow("warning"), w.message);
        if let Some(h) = &w.help {
            // The same help under several warnings is said once.
            if !helped.contains(&h.as_str()) {
                helped.push(h);
                outln!("    {}: {h}", s.cyan("help"));
            }
        }
    }
}

#[derive(Serialize)]
struct JsonRun<'a> {
    plan: &'a ActionPlan,
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
}

/// The refusal of `ap`, which the command names as `verb`.
pub(super) fn refused_error(ap: &ActionPlan, verb: &str) -> CliError {
    let b = ap.blocking();
    let first = b[0];
    let msg = if first.message.starts_with("refusing") {
        first.message.clone()
    } else {
        format!("refusing to {verb}: {}", first.message)
    };
    let mut e = CliError::new(msg);
    let mut helps: Vec<&str> = first.help.as_deref().into_iter().collect();
    for r in b.iter().skip(1) {
        e = e.help(format!("also refused: {}", r.message));
        if let Some(h) = &r.help {
            helps.push(h);
        }
    }
    // Each fix once, after the list of what is refused.
    let mut said: Vec<&str> = Vec::new();
    for h in helps {
        if !said.contains(&h) {
            said.push(h);
            e = e.help(h.to_string());
        }
    }
    if b.iter().all(|r| r.forceable) {
        e = e.help("--force acts anyway (only if you know the host does not need these devices)");
    }
    e
}

/// A snapshot is a file, not a host: only `--dry-run` can run on it.
/// Checked before anything is printed.
fn check_can_execute(s: &Setup, action: Action, act: &ActOpts) -> Result<(), CliError> {
    if act.dry_run || s.can_execute {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "`{action}` cannot act on a snapshot: a snapshot is a file, not a host"
    ))
    .help("add --dry-run to see the steps, or run on the host itself"))
}

/// What the host must offer before the plan can run (`/dev/vfio/vfio` for
/// a detach): checked before the plan is printed.
fn check_environment(
    s: &Setup,
    ap: &ActionPlan,
    act: &ActOpts,
    needs_vfio: bool,
) -> Result<(), CliError> {
    check_can_execute(s, ap.action, act)?;
    if act.dry_run || ap.is_refused() || !needs_vfio {
        return Ok(());
    }
    let detaches = ap
        .steps
        .iter()
        .any(|st| matches!(st.op, actions::Op::Detach { .. }));
    if let (true, Some(root)) = (detaches, &s.vfio_root) {
        if let Some(e) = actions::vfio_node_problem(root) {
            let mut c = CliError::new(e.message);
            if let Some(h) = e.help {
                c = c.help(h);
            }
            return Err(c);
        }
    }
    Ok(())
}

/// Check the environment, then print (and unless --dry-run, run) a plan.
fn run_plan(
    ctx: &Context,
    s: &mut Setup,
    ap: ActionPlan,
    act: &ActOpts,
    needs_vfio: bool,
) -> CliResult {
    check_environment(s, &ap, act, needs_vfio)?;
    if act.json && (act.dry_run || ap.is_refused()) {
        print_json(&JsonRun {
            plan: &ap,
            dry_run: act.dry_run,
            outcome: None,
        })?;
    } else if !act.json {
        print_plan(ctx, &ap);
    }
    if ap.is_refused() {
        return Err(refused_error(&ap, ap.action.as_str()));
    }
    if act.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let out = actions::execute(&ap, s.acting.backend());
    if act.json {
        print_json(&JsonRun {
            plan: &ap,
            dry_run: false,
            outcome: Some(&out),
        })?;
    } else {
        for st in &out.done {
            outln!("{} {} {}", ctx.out.green("done"), st.op, st.address);
        }
    }
    match &out.failed {
        None => Ok(ExitCode::SUCCESS),
        Some(actions::Failure {
            step: st,
            error: err,
        }) => {
            let mut e = CliError::new(format!(
                "{} failed: {} {}: {}",
                ap.action, st.op, st.address, err.message
            ));
            if let Some(h) = &err.help {
                e = e.help(h.clone());
            }
            if !out.rolled_back.is_empty() {
                e = e.help(format!(
                    "rolled back: reattached {} (all-or-nothing)",
                    out.rolled_back
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for actions::RollbackFailure {
                address: a,
                error: re,
            } in &out.rollback_failures
            {
                e = e.help(format!(
                    "could NOT reattach {a}: {}; it is still detached",
                    re.message
                ));
            }
            Err(e)
        }
    }
}

pub(super) fn run_detach(ctx: &Context, a: DetachArgs) -> CliResult {
    if a.persist.persist {
        return super::persist::run(ctx, &a.common, &a.persist, true);
    }
    run_on_devices(ctx, &a.common, &a.driver, true, actions::detach_plan)
}

pub(super) fn run_reattach(ctx: &Context, a: ReattachArgs) -> CliResult {
    if a.persist.persist {
        return super::persist::run(ctx, &a.common, &a.persist, false);
    }
    run_on_devices(ctx, &a.common, "vfio", false, actions::reattach_plan)
}

pub(super) fn run_reset(ctx: &Context, a: DeviceActionArgs) -> CliResult {
    run_on_devices(ctx, &a, "vfio", false, actions::reset_plan)
}

/// `detach`, `reattach` and `reset`: the devices named, planned by
/// `plan` with the invocation's backend, and run. `needs_vfio`: the plan
/// binds vfio-pci, so the environment check asks for it.
fn run_on_devices(
    ctx: &Context,
    a: &DeviceActionArgs,
    driver: &str,
    needs_vfio: bool,
    plan: fn(&Host, &[PciAddress], &ActionOptions, &dyn Backend) -> ActionPlan,
) -> CliResult {
    // Arguments first: a bad address is reported before a connection opens.
    let specs = parse_specs(&a.devices)?;
    let mut s = setup(ctx, a.act.dry_run)?;
    let req = resolve(&s.host, &specs)?;
    let opts = options(&a.act, !a.no_strict_group, driver);
    let ap = {
        let (h, b) = s.parts();
        plan(h, &req, &opts, b)
    };
    run_plan(ctx, &mut s, ap, &a.act, needs_vfio)
}

pub(super) fn run_check(ctx: &Context, a: CheckArgs) -> CliResult {
    let specs = parse_specs(std::slice::from_ref(&a.device))?;
    let mut s = setup(ctx, !a.try_it)?;
    if a.try_it {
        check_can_execute(&s, Action::CheckTry, &a.act)?;
    }
    let req = resolve(&s.host, &specs)?;
    let mut code = ExitCode::SUCCESS;
    for addr in &req {
        let Some(r) = check::check(&s.host, addr) else {
            continue;
        };
        if a.act.json && !a.try_it {
            print_json(&r)?;
        } else if !a.act.json {
            let o = &ctx.out;
            let dn = s
                .host
                .device(addr)
                .map(|d| super::device_name(ctx, d))
                .unwrap_or_default();
            outln!("{} {dn}", o.bold(&addr.to_string()));
            outln!(
                "  driver:    {}",
                r.driver.clone().unwrap_or_else(|| "(none)".into())
            );
            outln!("  reset:     {}", r.reset.summary);
            outln!("  group:     {}", r.viability.summary);
            for u in &r.used_by {
                outln!(
                    "  used by:   {} ({}{})",
                    u.domain,
                    if u.running { "running" } else { "shut off" },
                    if u.managed {
                        ", managed"
                    } else {
                        ", managed='no'"
                    }
                );
            }
            for b in &r.plan.blockers {
                outln!("  {}: {}", o.red("blocker"), b.message);
                if let Some(h) = &b.help {
                    outln!("    {}: {h}", o.cyan("help"));
                }
            }
            for w in &r.plan.warnings {
                outln!("  {}: {}", o.yellow("warning"), w.message);
                if let Some(h) = &w.help {
                    outln!("    {}: {h}", o.cyan("help"));
                }
            }
            let line = r.verdict_line();
            outln!(
                "verdict: {}",
                match r.verdict {
                    Verdict::Ok => o.green(&line),
                    Verdict::Blocked => o.red(&line),
                    Verdict::Unverified | Verdict::Nothing => o.yellow(&line),
                }
            );
        }
        if r.plan.needs_force() {
            code = ExitCode::from(1);
        }
    }
    if a.try_it {
        let mut ap = {
            let (h, b) = s.parts();
            actions::try_plan(h, &req, b)
        };
        ap.forced = a.act.force;
        let n = ap.steps.len();
        run_plan(ctx, &mut s, ap, &a.act, true)?;
        if !a.act.json {
            let o = &ctx.out;
            if a.act.dry_run {
                outln!(
                    "verdict: not tried (--dry-run): the {n} step(s) above would detach, reset and give back the group"
                );
            } else {
                outln!(
                    "verdict: {} — the group was detached to vfio-pci, reset and given back; {} can be assigned",
                    o.green("ok"),
                    a.device
                );
            }
        }
        return Ok(code);
    }
    Ok(code)
}

/// A domain's `managed='no'` hostdevs and whether it runs: from libvirt by
/// name, or from a domain XML file.
fn domain_hostdevs(
    s: &Setup,
    name: &str,
) -> Result<(String, Option<bool>, Vec<PciAddress>), CliError> {
    if let Some(c) = s.acting.conn() {
        let d = c.domain(name).map_err(super::libvirt_error)?;
        let hd = actions::unmanaged_hostdevs(&d.inactive_xml)
            .map_err(|e| CliError::new(format!("the XML of `{name}`: {e}")))?;
        return Ok((d.name, Some(d.running), hd));
    }
    let p = Path::new(name);
    if !p.is_file() {
        return Err(CliError::usage(format!(
            "no domain file {name}, and no libvirt connection to look `{name}` up by name"
        ))
        .help("give -c URI (and --backend libvirt or auto) to use a libvirt domain, or pass a domain XML file"));
    }
    let text = std::fs::read_to_string(p)
        .map_err(|e| CliError::usage(format!("cannot read {name}: {e}")))?;
    let hd = actions::unmanaged_hostdevs(&text).map_err(|e| {
        CliError::usage(format!("{name} is not well-formed XML: {}", e.reason()))
            .in_file(Located::at(name, &text, e.line, e.column))
    })?;
    let doc_name = virt_pci::domain::parse(&text)
        .ok()
        .and_then(|d| virt_pci::domain::domain_name(&d))
        .unwrap_or_else(|| name.to_string());
    // Without libvirt nothing says whether it runs.
    let running = s
        .host
        .domains
        .iter()
        .any(|u| u.domain == doc_name && u.running)
        .then_some(true);
    Ok((doc_name, running, hd))
}

pub(super) fn run_prepare(ctx: &Context, a: DomainActionArgs) -> CliResult {
    let mut s = setup(ctx, a.act.dry_run)?;
    let (name, _running, hd) = domain_hostdevs(&s, &a.domain)?;
    let opts = options(&a.act, true, "vfio");
    let ap = {
        let (h, b) = s.parts();
        actions::prepare_plan(h, &name, &hd, &opts, b)
    };
    run_plan(ctx, &mut s, ap, &a.act, true)
}

pub(super) fn run_release(ctx: &Context, a: ReleaseArgs) -> CliResult {
    let act = a.common.act.clone();
    let mut s = setup(ctx, act.dry_run)?;
    let (name, running, hd) = domain_hostdevs(&s, &a.common.domain)?;
    let opts = options(&act, true, "vfio");
    let ret = a.return_unreset;
    let ap = {
        let (h, b) = s.parts();
        actions::release_plan(h, &name, running, &hd, &opts, ret, b)
    };
    run_plan(ctx, &mut s, ap, &act, false)
}

//! `virt-pci man`: the man pages, rendered by clap_mangen from the same
//! `clap::Command` that parses the arguments. `virt-pci(1)` lists its
//! subcommands as `virt-pci-<cmd>(1)`, so those pages exist too: `man CMD`
//! prints one, `man --dir DIR` writes all of them (what `make deb` installs).
//! Everything is rendered into memory first and written with `emit`, so a
//! reader that goes away (`| head`) ends the output quietly.

use super::{CliError, CliResult};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(ClapArgs, Debug)]
pub(super) struct ManArgs {
    /// Print this subcommand's page, virt-pci-CMD(1), instead of virt-pci(1).
    #[arg(value_name = "CMD", conflicts_with = "dir")]
    command: Option<String>,
    /// Write virt-pci.1 and every virt-pci-CMD.1 into DIR (created if missing).
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
}

/// The pages: `virt-pci.1`, then `virt-pci-CMD.1` for each listed subcommand.
fn pages(cmd: clap::Command) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let mut cmd = cmd;
    cmd.build();
    let mut out = vec![("virt-pci.1".to_string(), render(cmd.clone())?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("virt-pci-{}", sub.get_name());
        // The page's own name in its NAME and SYNOPSIS lines.
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("virt-pci {}", sub.get_name()));
        out.push((format!("{name}.1"), render(page)?));
    }
    Ok(out)
}

fn render(cmd: clap::Command) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| CliError::usage(format!("cannot render the man page: {e}")))?;
    Ok(buf)
}

pub(super) fn man(cmd: clap::Command, a: ManArgs) -> CliResult {
    let pages = pages(cmd)?;
    if let Some(dir) = a.dir {
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
        for (name, text) in &pages {
            let p = dir.join(name);
            virt_pci::fsutil::write_atomic(&p, text, None)
                .map_err(|e| CliError::usage(format!("cannot write {}: {e}", p.display())))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let want = match &a.command {
        None => "virt-pci.1".to_string(),
        Some(c) => format!("virt-pci-{c}.1"),
    };
    let Some((_, text)) = pages.iter().find(|(n, _)| *n == want) else {
        let names: Vec<&str> = pages
            .iter()
            .skip(1)
            .filter_map(|(n, _)| n.strip_prefix("virt-pci-")?.strip_suffix(".1"))
            .collect();
        return Err(CliError::usage(format!(
            "no man page for `{}`",
            a.command.unwrap_or_default()
        ))
        .help(format!("pages exist for: {}", names.join(", "))));
    };
    super::emit(&String::from_utf8_lossy(text));
    Ok(ExitCode::SUCCESS)
}

//! Build script: compiles the std-only HTTP workload (`workload/main.rs`) into a
//! static binary at `$OUT_DIR/drover-workload`. `src/host/workload.rs` embeds it
//! with `include_bytes!` and packs it into a `FROM scratch` image at run time,
//! so no image registry is ever needed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKLOAD_SRC: &str = "workload/main.rs";
const WORKLOAD_BIN: &str = "drover-workload";

fn main() {
    println!("cargo:rerun-if-changed={WORKLOAD_SRC}");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = manifest_dir.join(WORKLOAD_SRC);
    let out = out_dir.join(WORKLOAD_BIN);

    // The workload runs in a container on this machine's engine, so it is always
    // built for the host, whatever the crate itself is being built for.
    let host = env::var("HOST").unwrap_or_default();
    if let Ok(target) = env::var("TARGET") {
        if !host.is_empty() && target != host {
            println!(
                "cargo:warning=drover: building the workload binary for the host ({host}), \
                 not for TARGET {target}; the embedded image will only run on {host} engines"
            );
        }
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        // Flags meant for the crate being built must not leak into this compile.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .args(["--edition", "2021"])
        .args(["--crate-type", "bin"])
        .args(["--crate-name", "drover_workload"])
        .args(["-C", "opt-level=2"])
        .args(["-C", "target-feature=+crt-static"])
        .args(["-C", "strip=debuginfo"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "drover: could not run the Rust compiler {rustc:?} to build the workload \
                 binary from {src}: {e}\nMake sure rustc is installed and on PATH (or set RUSTC).",
                src = src.display()
            )
        });

    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "drover: compiling the workload binary ({src}) with {rustc:?} failed ({status}).\n\
             --- rustc stderr ---\n{stderr}\n--- end of rustc stderr ---\n\
             The workload is linked statically (-C target-feature=+crt-static) so it can run in a \
             `FROM scratch` image. If the error mentions missing libc.a / -lc / crt1.o, install the \
             static C library: on Debian/Ubuntu `apt-get install libc6-dev`, on Fedora/RHEL \
             `dnf install glibc-static`.",
            src = src.display(),
            status = output.status,
        );
    }
    // Surface compiler warnings: the workload is meant to compile cleanly.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning=drover workload: {line}");
    }

    check_static(&out);
}

/// A dynamically linked binary would fail in a `FROM scratch` image with a
/// baffling "no such file or directory"; catch that here. An ELF executable
/// needs a dynamic loader exactly when it has a PT_INTERP program header.
fn check_static(bin: &Path) {
    let bytes = std::fs::read(bin).unwrap_or_else(|e| {
        panic!(
            "drover: cannot read the compiled workload binary {}: {e}",
            bin.display()
        )
    });
    // Only 64-bit little-endian ELF is inspected; anything else is left alone.
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        if off + 4 > bytes.len() {
            return;
        }
        let p_type =
            u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]);
        if p_type == PT_INTERP {
            panic!(
                "drover: the workload binary {} is dynamically linked although it was built with \
                 -C target-feature=+crt-static; it could not run in a `FROM scratch` image. \
                 Build on a Linux host whose Rust target supports static linking \
                 (e.g. x86_64-unknown-linux-gnu with libc6-dev installed).",
                bin.display()
            );
        }
    }
}

//! A QEMU TCG plugin that counts, for every translation block, how many
//! times the guest executed it, and writes `vaddr insns count` lines (hex,
//! decimal, decimal) to the file named by its `out=` argument when QEMU
//! exits. `cargo xtask profile` maps the addresses to kernel symbols.
//!
//! Debian ships QEMU with plugin support but without its sample plugins;
//! this one is built from the bindings crate instead.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use qemu_plugin_sys::{
    qemu_info_t, qemu_plugin_cb_flags, qemu_plugin_id_t, qemu_plugin_register_atexit_cb,
    qemu_plugin_register_vcpu_tb_exec_cb, qemu_plugin_register_vcpu_tb_trans_cb, qemu_plugin_tb,
    qemu_plugin_tb_n_insns, qemu_plugin_tb_vaddr, QEMU_PLUGIN_VERSION,
};

/// The plugin API version this plugin was built for; QEMU checks it.
#[no_mangle]
pub static qemu_plugin_version: c_int = QEMU_PLUGIN_VERSION as c_int;

/// One translation of a block. Blocks are never freed: QEMU may run a
/// translation until it exits.
struct Block {
    vaddr: u64,
    insns: u64,
    executions: AtomicU64,
}

static BLOCKS: Mutex<Vec<&'static Block>> = Mutex::new(Vec::new());
static OUT: Mutex<String> = Mutex::new(String::new());

unsafe extern "C" fn on_exec(_vcpu: c_uint, data: *mut c_void) {
    // SAFETY: `data` is the leaked `Block` registered with this callback.
    let block = unsafe { &*data.cast::<Block>() };
    block.executions.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn on_translate(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    // SAFETY: QEMU passes a block being translated, valid during the call.
    let (vaddr, insns) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb)) };
    let block: &'static Block = Box::leak(Box::new(Block {
        vaddr,
        insns: insns as u64,
        executions: AtomicU64::new(0),
    }));
    BLOCKS.lock().unwrap().push(block);
    let data = core::ptr::from_ref(block).cast_mut().cast();
    // SAFETY: As above; `data` lives for ever.
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(on_exec),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            data,
        )
    };
}

unsafe extern "C" fn on_exit(_id: qemu_plugin_id_t, _data: *mut c_void) {
    let mut totals = BTreeMap::<(u64, u64), u64>::new();
    for block in BLOCKS.lock().unwrap().iter() {
        *totals.entry((block.vaddr, block.insns)).or_default() +=
            block.executions.load(Ordering::Relaxed);
    }
    let path = OUT.lock().unwrap().clone();
    let Ok(file) = std::fs::File::create(&path) else {
        eprintln!("tbprof: cannot create {path}");
        return;
    };
    let mut out = std::io::BufWriter::new(file);
    for ((vaddr, insns), executions) in totals {
        if executions > 0 {
            let _ = writeln!(out, "{vaddr:x} {insns} {executions}");
        }
    }
}

/// Called by QEMU when it loads the plugin (`-plugin libtbprof.so,out=FILE`).
///
/// # Safety
///
/// QEMU passes `argc` valid NUL-terminated strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    _info: *const qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let mut out = "tbprof.out".to_string();
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: Guaranteed by the caller.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        if let Some(path) = arg.strip_prefix("out=") {
            out = path.to_string();
        }
    }
    *OUT.lock().unwrap() = out;
    // SAFETY: `id` is ours; the callbacks live as long as the plugin.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_translate));
        qemu_plugin_register_atexit_cb(id, Some(on_exit), core::ptr::null_mut());
    }
    0
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Regression seeds of the differential suite (iopf_diff.c): streams that
 * once made io-pgfault.c and the Rust core diverge, run first on every
 * boot. One line each:
 *
 *   IOPF_DIFF_SEED(mode, seed, ops)	what diverged, and where it was fixed
 *
 * mode is seq or conc, ops the stream's length (per thread for conc).
 * `cargo xtask test` and `cargo xtask diff` append the seed of a new
 * divergence here (before the end marker), for the developer to commit
 * with the fix.
 */
/* Device 3 from op 12288: a hand-off answered late (iopf_h_handoff_flush()). */
IOPF_DIFF_SEED(conc, 1519227812289879002, 25000)
/* iopf_diff seeds end */

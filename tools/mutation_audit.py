"""Mutation audit: apply each known mutation of the library, run the tests meant to catch it, always revert.

    python tools/mutation_audit.py                 # every mutation; JSON summary on stdout, progress on stderr
    python tools/mutation_audit.py --only log_bound --only dssim_min
    python tools/mutation_audit.py --list          # names, files and tests, without running anything

Each mutation names a file (or several candidate paths and globs, for files that may move), the exact old text
(which must occur exactly once in exactly one candidate file; alternatives may be listed, for code that is being
renamed), the new text, and the pytest node ids expected to catch it. For each, the file's bytes are read, the
mutation written, ``python -m pytest -x -q NODEIDS`` run from the repository root, and the original bytes written
back in a ``finally`` (so on Ctrl-C and SIGTERM too: both signals become KeyboardInterrupt, and pytest is
killed). A mutation is

* ``caught``: pytest failed (exit 1);
* ``survived``: pytest passed (exit 0): the tests listed do not see it;
* ``no-test``: no node id is listed, or pytest found none of them (exit 4 or 5);
* ``error``: pytest could not run (other exit codes, or the timeout);
* ``stale``: the old text is not in any candidate file (the code changed: update the mutation).

The kill rate is caught / (every mutation applied). Exit status: 0 where every applied mutation was caught, 1
otherwise, 2 where a file still holds a mutated text before the start (a run killed with SIGKILL: ``git checkout``
the file). Run it on a clean work tree; it only ever writes the files below and restores their exact bytes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    #: Candidate paths (relative to the root; globs allowed): the mutation applies in the one that holds ``old``.
    files: tuple[str, ...]
    #: ``(old, new)`` alternatives, tried in order: the first whose old text occurs exactly once is applied.
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]
    why: str = ""


SIZES = "tests/test_trust_sizes.py::test_size_within_its_ceiling"
GUARANTEE_EXCLUSIVE = "tests/test_guarantee.py::test_tol_and_rel_tol_are_exclusive"
PLAIN_APPENDS = "tests/test_writes.py::test_plain_xarray_appends_keep_the_bound"
CONVERSION = ("xdiffc/conversion.py", "xdiffc/conversion/*.py", "xdiffc/convert/*.py", "xdiffc/convert.py")

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "fill_threshold", ("xdiffc/masking.py",),
        (("FILL_THRESHOLD = 1e30\n", "FILL_THRESHOLD = 1e31\n"),),
        ("tests/test_trust_fill.py::test_the_threshold_edges",
         "tests/test_trust_fill.py::test_one_huge_value_stays_exact_and_out_of_the_range"),
        "one 5e30 value enters the range, and rel_tol of that range wipes out the field"),
    Mutation(
        "climatology_at_tol", ("xdiffc/coders/decomposition.py",),
        (("tol * MEAN_FRACTION, _empty", "tol, _empty"),),
        ("tests/test_trust_decomposition.py::test_the_climatology_is_coded_at_a_quarter_of_the_bound",
         "tests/test_trust_decomposition.py::test_the_anomaly_stream_size_is_pinned"),
        "the climatology coded at tol instead of tol/4: 8,866 -> 18,070 bytes on 110 x 64 x 128"),
    Mutation(
        "log_bound_loose", ("xdiffc/logdomain.py",),
        (("return math.log2((1 + r) / (1 + _ROUNDOFF[np.dtype(dtype)]))",
          "return r / math.log(2) * 1.01 - math.log2(1 + _ROUNDOFF[np.dtype(dtype)])"),),
        ("tests/test_trust_logdomain.py::test_the_log_bound_inequality",
         "tests/test_trust_logdomain.py::test_decoding_within_the_log_bound_keeps_the_pointwise_bound",
         "tests/test_trust_logdomain.py::test_a_precipitation_field_needs_no_exceptions",
         f"{SIZES}[precipitation/log_domain_0.01]"),
        "log2(1+r) -> r/ln2*1.01: the exact check hides it as exceptions and a larger stream"),
    Mutation(
        "negative_zero_unmasked", ("xdiffc/fidelity.py",),
        (("zeros = (x == 0) & ~missing", "zeros = (x == 0) & ~np.signbit(x) & ~missing"),),
        ("tests/test_trust_zeros.py::test_every_zero_comes_back_as_positive_zero",
         "tests/test_trust_zeros.py::test_negative_zeros_cost_what_positive_zeros_cost"),
        "-0.0 left out of the zero mask: it comes back as -0.0 (stored as an exception), the stream grows"),
    Mutation(
        "dssim_min_loose", ("xdiffc/metrics.py",),
        (("dssim_min: float = 0.995", "dssim_min: float = 0.99"),),
        ("tests/test_trust_tuning.py::test_dssim_binds_the_search",
         "tests/test_trust_tuning.py::test_suggest_tol_reports_dssim_as_binding"),
        "suggest_tol's DSSIM threshold (Baker's criteria, in metrics.Criteria) 0.995 -> 0.99"),
    Mutation(
        "climatology_tol_doubled", ("xdiffc/coders/decomposition.py",),
        (("tol * MEAN_FRACTION, _empty", "tol * MEAN_FRACTION * 2, _empty"),),
        (f"{SIZES}[climate/anomaly]", f"{SIZES}[climate_nan/anomaly]"),
        "size guard: the climatology at tol/2"),
    Mutation(
        "interp_no_previous_slice_context", ("xdiffc/coders/interp.py",),
        (("_K_CHOICES = (0, 1, 2, 4, 8, 16)", "_K_CHOICES = (0,)"),),
        (f"{SIZES}[smooth/interp]", f"{SIZES}[smooth_nan/interp]"),
        "size guard: interp's version 3 without the previous-slice contexts"),
    Mutation(
        "bitmap_no_previous_slice_context", ("xdiffc/entropy/bitmap.py",),
        (("prev = b[t - 1, i, j] + 1 if t > 0 else 0", "prev = 0"),),
        (f"{SIZES}[speckle/bitmap_coder]",),
        "size guard: the bitmap coder without the previous slice's bit in its context"),
    Mutation(
        "wavelet_no_packets", ("xdiffc/coders/wavelet.py",),
        (("PROBE_PACKETS = {1: (False,), 2: (False, True), 3: (True,)}",
          "PROBE_PACKETS = {1: (False,), 2: (False,), 3: (False,)}"),),
        (f"{SIZES}[smooth/wavelet]", f"{SIZES}[smooth_nan/wavelet]"),
        "size guard: the wavelet coder without its packet decomposition"),
    Mutation(
        "resume_skips_units_logged_out_of_order", CONVERSION,
        (("todo = [i for i in range(len(units)) if i not in log.done]",
          "todo = list(range(len(log.done), len(units)))  # the log read as a prefix"),),
        ("tests/test_convert.py::test_resume_redoes_a_unit_missing_below_the_highest_one_logged",),
        "--resume reads the progress log as a prefix: units finished out of order are skipped or redone"),
    Mutation(
        "rename_before_verification", CONVERSION,
        (("summary = _summarise(work, store, spec, stats, seconds, skipped, verify=verify)\n        _finish(store)\n",
          "_finish(store)\n        summary = _summarise(store, store, spec, stats, seconds, skipped, verify=verify)\n"),
         ("summary = summarise(work, store, spec, stats, seconds, skipped, verify=verify)\n        _finish(store)\n",
          "_finish(store)\n        summary = summarise(store, store, spec, stats, seconds, skipped, verify=verify)\n")),
        ("tests/test_convert.py::test_a_failed_verification_puts_nothing_in_place_and_keeps_the_work",),
        "the final rename before verification: a store that fails verification is put in place"),


    # ---- the new engine: options, the coder protocol and registry, levels, the core's loop, the codecs ----
    Mutation(
        "interp_fixed_classes_always", ("xdiffc/coders/interp.py",),
        (("classes = p.sym.size >= FIXED_CLASSES_FROM", "classes = True"),),
        ("tests/test_engine_audit.py::test_level_1_codes_with_the_fixed_plan",),
        "level 1 gives small chunks activity classes, whose tables cost more than the classes save"),
    Mutation(
        "opt_tol_and_rel_tol_both_accepted", ("xdiffc/options.py",),
        (('if self.mode == "pointwise" and (self.tol is not None and self.rel_tol is not None or (',
          'if self.mode == "pointwise" and (False or ('),),
        (GUARANTEE_EXCLUSIVE,),
        "check_array no longer refuses tol and rel_tol together (which one binds is then arbitrary)"),
    Mutation(
        "opt_level_0_accepted", ("xdiffc/options.py",),
        (("LEVELS = range(1, 10)", "LEVELS = range(0, 10)"),),
        ("tests/test_levels.py::test_a_bad_level_is_refused_everywhere",),
        "level 0 accepted (off by one at the low end of the levels)"),
    Mutation(
        "opt_pw_rel_limit_inclusive", ("xdiffc/options.py",),
        (("if below is not None and value >= below:", "if below is not None and value > below:"),),
        ("tests/test_api.py::test_a_pointwise_relative_bound_of_1_or_more_for_one_variable_is_refused_by_name",),
        "pw_rel_tol=1 accepted: any value could then shrink to 0"),
    Mutation(
        "opt_to_config_drops_valid_range", ("xdiffc/options.py",),
        (('"valid_range": None if self.valid_range is None else list(self.valid_range),', '"valid_range": None,'),),
        ("tests/test_fidelity.py::test_bound_types_round_trip_through_numcodecs_and_zarr_v3",
         "tests/test_fidelity.py::test_field_with_minimum_zero_stays_nonnegative_and_within_cf_range",
         "tests/test_options.py::test_the_configuration_reads_back_as_the_same_options",
         "tests/test_options.py::test_the_configuration_holds_only_the_keys_set",
         "tests/test_options.py::test_a_codec_configuration_clamps_into_its_valid_range"),
        "valid_range not copied into the codec configuration: a store no longer clamps into the CF range"),
    Mutation(
        "opt_to_config_level_always", ("xdiffc/options.py",),
        (('"level": None if self.level == DEFAULT_LEVEL else self.level}', '"level": self.level}'),),
        ("tests/test_levels.py::test_codecs_carry_the_level_in_their_configuration_only_when_set",
         "tests/test_codec.py::test_config_is_json_and_round_trips"),
        "DEFAULT_LEVEL not honoured: every configuration gains a level key (older configurations change)"),
    Mutation(
        "opt_to_config_level_never", ("xdiffc/options.py",),
        (('"level": None if self.level == DEFAULT_LEVEL else self.level}', '"level": None}'),),
        ("tests/test_levels.py::test_codecs_carry_the_level_in_their_configuration_only_when_set",
         "tests/test_levels.py::test_the_accessor_writes_at_the_level_asked_for"),
        "the level not copied into the codec configuration: stores are written at level 9 whatever was asked"),
    Mutation(
        "opt_absolute_ignores_missing", ("xdiffc/options.py",),
        (("values = values[valid]", "values = values"),),
        ("tests/test_trust_fill.py::test_one_huge_value_stays_exact_and_out_of_the_range",
         "tests/test_guarantee.py::test_relative_bound_holds"),
        "rel_tol measured over the missing values too (fill values widen the range, NaN makes it NaN)"),
    Mutation(
        "opt_keep_sign_ignores_pw_rel_tol", ("xdiffc/options.py",),
        (("return bool(self.preserve_zero) or self.pw_rel_tol is not None", "return bool(self.preserve_zero)"),),
        ("tests/test_fidelity.py::test_pointwise_relative_bound_holds",
         "tests/test_trust_zeros.py::test_every_zero_comes_back_as_positive_zero"),
        "a pointwise-relative bound alone no longer keeps zeros and signs"),
    Mutation(
        "opt_uses_rel_tol_despite_pw_rel_tol", ("xdiffc/options.py",),
        (("return self.tol is None and self.pw_rel_tol is None", "return self.tol is None"),),
        ("tests/test_options.py::test_one_variables_entries",
         "tests/test_options.py::test_one_array_accepts_each_combination_the_docs_name"),
        "a Dataset's rel_tol also bounds the variables that only a pointwise-relative bound names"),
    Mutation(
        "opt_l2_accepts_rel_tol", ("xdiffc/options.py",),
        (("if self.nrmse is None or self.tol is not None or self.rel_tol is not None:",
          "if self.nrmse is None or self.tol is not None:"),),
        ("tests/test_api.py::test_the_same_error_from_every_entry_point",
         "tests/test_fidelity.py::test_l2_mode_refuses_pointwise_guarantees",
         "tests/test_options.py::test_l2_takes_nrmse_alone"),
        "mode='l2' silently takes (and ignores) rel_tol beside nrmse"),
    Mutation(
        "trial_best_ignores_the_last_size", ("xdiffc/coders/base.py",),
        (('return min(self.sizes.values(), default=float("inf"))',
          'return min(list(self.sizes.values())[:-1], default=float("inf"))'),),
        ("tests/test_coders.py::test_trial_best_is_the_smallest_candidate",),
        "Trial.best ignores the latest candidate's size"),
    Mutation(
        "enabled_min_level_strict", ("xdiffc/coders/base.py",),
        (("if c.min_level <= level]", "if c.min_level < level]"),),
        ("tests/test_coders.py::test_each_level_enables_the_coders_from_their_min_level",
         "tests/test_levels.py::test_level_1_tries_interp_alone_and_level_9_the_full_search"),
        "a coder enabled one level above its min_level (level 1 enables nothing)"),
    Mutation(
        "register_priority_reversed", ("xdiffc/coders/base.py",),
        (("key=lambda c: c.priority)", "key=lambda c: -c.priority)"),),
        ("tests/test_coders.py::test_the_registry_refuses_a_name_or_priority_taken_and_orders_by_priority",
         "tests/test_levels.py::test_level_1_tries_interp_alone_and_level_9_the_full_search"),
        "the registry kept in reverse order of priority (the wavelet tried first, the decomposition last)"),
    Mutation(
        "register_accepts_a_taken_priority", ("xdiffc/coders/base.py",),
        (("if coder.name in REGISTRY or any(c.priority == coder.priority for c in REGISTRY.values()):",
          "if coder.name in REGISTRY:"),),
        ("tests/test_coders.py::test_the_registry_refuses_a_name_or_priority_taken_and_orders_by_priority",
         "tests/test_engine_audit.py::test_a_taken_priority_is_refused_and_the_registry_stays_as_it_was"),
        "two coders of one priority registered: their order is then the order of registration"),
    Mutation(
        "anomaly_min_level_5", ("xdiffc/coders/decomposition.py",),
        (('name, priority, min_level = "anomaly", 10, 4', 'name, priority, min_level = "anomaly", 10, 5'),),
        ("tests/test_levels.py::test_each_level_tries_exactly_the_coders_it_enables",
         "tests/test_coders.py::test_each_level_enables_the_coders_from_their_min_level",
         "tests/test_engine_audit.py::test_the_documented_table_is_the_registry",
         "tests/test_engine_audit.py::test_each_level_encodes_the_coders_from_their_min_level"),
        "the decomposition tried from level 5, not 4 (as the docs' table says)"),
    Mutation(
        "sz3_min_level_8", ("xdiffc/coders/sz3.py",),
        (('name, priority, min_level = "sz3", 30, 7', 'name, priority, min_level = "sz3", 30, 8'),),
        ("tests/test_levels.py::test_each_level_tries_exactly_the_coders_it_enables",
         "tests/test_coders.py::test_each_level_enables_the_coders_from_their_min_level",
         "tests/test_engine_audit.py::test_the_documented_table_is_the_registry",
         "tests/test_engine_audit.py::test_each_level_encodes_the_coders_from_their_min_level"),
        "SZ3 tried from level 8, not 7"),
    Mutation(
        "wavelet_priority_before_interp", ("xdiffc/coders/wavelet.py",),
        (('name, priority, min_level = "wavelet", 40, 6', 'name, priority, min_level = "wavelet", 15, 6'),),
        ("tests/test_decomposition.py::test_interp_is_encoded_when_the_decomposition_fails_after_all",
         "tests/test_wavelet.py::test_the_core_chooses_it_where_it_is_smaller_and_the_probe_is_reused"),
        "the wavelet tried before interp: its gates see no candidate, so it is always encoded in full"),
    Mutation(
        "interp_gate_ignores_superseded", ("xdiffc/coders/interp.py",),
        (("return not trial.superseded", "return True"),),
        ("tests/test_decomposition.py::test_a_decisive_sample_skips_interp_without_changing_the_stream",),
        "interp encoded in full even where the decomposition won its sample decisively"),
    Mutation(
        "sz3_gate_ignores_superseded", ("xdiffc/coders/sz3.py",),
        (("        if trial.superseded:\n            return False\n", ""),),
        ("tests/test_decomposition.py::test_a_decisive_sample_skips_interp_without_changing_the_stream",),
        "SZ3 encoded in full where the decomposition superseded interp (and no sample estimate is left)"),
    Mutation(
        "sz3_gate_margin_inverted", ("xdiffc/coders/sz3.py",),
        (("return size < MARGIN * trial.sample_bytes", "return size > MARGIN * trial.sample_bytes"),),
        ("tests/test_guarantee.py::test_the_bound_holds_on_every_path",
         "tests/test_engine_audit.py::test_interp_leaves_its_sample_estimate_for_sz3s_gate",
         "tests/test_engine_audit.py::test_sz3_is_encoded_where_its_sample_may_win_and_only_there"),
        "SZ3's gate inverted: encoded where interp's sample says it loses, skipped where it may win"),
    Mutation(
        "interp_sample_bytes_not_recorded", ("xdiffc/coders/interp.py",),
        (("payload, recon, trial.sample_bytes = _encode(", "payload, recon, _ = _encode("),),
        ("tests/test_guarantee.py::test_the_bound_holds_on_every_path",
         "tests/test_engine_audit.py::test_interp_leaves_its_sample_estimate_for_sz3s_gate",
         "tests/test_engine_audit.py::test_sz3_is_encoded_where_its_sample_may_win_and_only_there"),
        "interp's sample estimate not left in the trial: SZ3's gate has nothing to compare and always encodes"),
    Mutation(
        "anomaly_superseded_not_set", ("xdiffc/coders/decomposition.py",),
        (("trial.superseded = supersedes_interp(", "trial.superseded = False and supersedes_interp("),),
        ("tests/test_decomposition.py::test_a_decisive_sample_skips_interp_without_changing_the_stream",),
        "the decomposition never tells the later coders that it superseded interp"),
    Mutation(
        "interp_model_level_3", ("xdiffc/coders/interp.py",),
        (("MODEL_LEVEL = 2\n", "MODEL_LEVEL = 3\n"),),
        ("tests/test_levels.py::test_each_level_tries_exactly_the_coders_it_enables",
         "tests/test_guarantee.py::test_any_layout",
         "tests/test_engine_audit.py::test_level_2_estimates_the_models_and_level_3_also_the_axis_order"),
        "level 2 codes with level 1's fixed context models (off by one in the level threshold)"),
    Mutation(
        "interp_search_level_4", ("xdiffc/coders/interp.py",),
        (("SEARCH_LEVEL = 3\n", "SEARCH_LEVEL = 4\n"),),
        ("tests/test_levels.py::test_each_level_tries_exactly_the_coders_it_enables",
         "tests/test_guarantee.py::test_any_layout",
         "tests/test_engine_audit.py::test_level_2_estimates_the_models_and_level_3_also_the_axis_order"),
        "level 3 no longer chooses the axis order nor weighs a zstd body"),
    Mutation(
        "interp_fixed_k_not_shrunk", ("xdiffc/coders/interp.py",),
        (("        while k and groups * plan.n_cls * (2 * k + 2) * plan.n_dense > _MAX_TABLE:\n            k //= 2\n",
          ""),),
        ("tests/test_levels.py::test_compress_at_level_1_as_the_checks_call_it",
         "tests/test_guarantee.py::test_any_layout",
         "tests/test_engine_audit.py::test_level_1_halves_k_until_its_table_fits"),
        "level 1's plan keeps K=4 whatever the alphabet: its count table exceeds _MAX_TABLE"),
    Mutation(
        "interp_fixed_axis_first", ("xdiffc/coders/interp.py",),
        (("live[-1] if live else 0, FIXED_K)", "live[0] if live else 0, FIXED_K)"),),
        ("tests/test_levels.py::test_compress_at_level_1_as_the_checks_call_it",
         "tests/test_engine_audit.py::test_level_1_codes_with_the_fixed_plan"),
        "level 1's previous-point context along the first live axis (time), not the last"),
    Mutation(
        "cost_stride_rows_from_1", ("xdiffc/predict/interp.py",),
        (("for i in range(0, n_odd, cost_stride):", "for i in range(1, n_odd, cost_stride):"),),
        ("tests/test_golden.py::test_kernels_match_the_numpy_reference",),
        "the linear/cubic choice weighs rows from 1 (off by one): the first row of every pass is not seen"),
    Mutation(
        "core_reference_from_level_5", ("xdiffc/core.py",),
        (("options.level >= REFERENCE_MIN_LEVEL", "options.level > REFERENCE_MIN_LEVEL"),),
        ("tests/test_archive_climatology.py::test_the_reference_pays_and_its_phase_is_found",
         "tests/test_engine_audit.py::test_an_archive_climatology_is_weighed_from_level_4"),
        "an archive climatology weighed from level 5, not 4"),
    Mutation(
        "core_residual_in_the_output_dtype", ("xdiffc/core.py",),
        (("work.dtype if linear else None)", "work.dtype)"),),
        ("tests/test_archive_climatology.py::test_chunks_against_a_reference_hold_the_bound",
         "tests/test_archive_climatology.py::test_any_values_against_a_reference_hold_the_bound",
         "tests/test_engine_audit.py::test_the_log_domain_check_sees_the_logarithms_the_decoder_sees"),
        "the residual cast to the output dtype before the prediction is added: not what the decoder computes"),
    Mutation(
        "core_worth_encoding_ignored", ("xdiffc/core.py",),
        (("if not coder.applies(target.shape) or not coder.worth_encoding(trial):",
          "if not coder.applies(target.shape):"),),
        ("tests/test_decomposition.py::test_a_decisive_sample_skips_interp_without_changing_the_stream",),
        "the core's loop encodes every enabled coder in full, whatever its gate says"),
    Mutation(
        "core_sizes_not_recorded", ("xdiffc/core.py",),
        (("trial.sizes[coder.name] = out[-1].nbytes", "pass"),),
        ("tests/test_wavelet.py::test_the_core_chooses_it_where_it_is_smaller_and_the_probe_is_reused",
         "tests/test_decomposition.py::test_interp_is_encoded_when_the_decomposition_fails_after_all",
         "tests/test_engine_audit.py::test_each_gate_sees_the_sizes_of_the_candidates_checked_before_it",
         "tests/test_engine_audit.py::test_the_wavelet_is_not_encoded_where_interp_is_far_smaller"),
        "the candidates' sizes not left in the trial: the wavelet's gates see no candidate and always encode"),
    Mutation(
        "core_written_sections_without_the_coders", ("xdiffc/core.py",),
        (("return frozenset(SECTIONS) | frozenset(RESIDUAL_CODERS)", "return frozenset(SECTIONS)"),),
        ("tests/test_format_docs.py::test_every_section_the_code_writes_is_documented",
         "tests/test_format_docs.py::test_every_section_has_a_golden_stream"),
        "written_sections forgets the residual coders' sections (docs and golden checks skip them)"),
    Mutation(
        "is_partial_first_step", ("xdiffc/codec.py",),
        (("special_mask(chunk[-1], fill_values)", "special_mask(chunk[0], fill_values)"),),
        (PLAIN_APPENDS,),
        "is_partial checks the first step instead of the last: padded edge chunks are coded lossily"),
    Mutation(
        "codec_partial_chunk_not_exact", ("xdiffc/codec.py",),
        (("options = EXACT if is_partial(array, fills) else self.options", "options = self.options"),),
        (PLAIN_APPENDS,),
        "the partial last chunk coded lossily: a plain append decodes, merges and re-encodes it (error adds up)"),
    Mutation(
        "is_partial_any_missing", ("xdiffc/codec.py",),
        (("special_mask(chunk[-1], fill_values).all())", "special_mask(chunk[-1], fill_values).any())"),),
        (PLAIN_APPENDS, "tests/test_zarr.py::test_edge_chunks_padded_with_fill_value_keep_the_bound",
         "tests/test_engine_audit.py::test_only_a_chunk_whose_last_step_is_all_missing_is_partial"),
        "any missing value in the last step makes the chunk 'partial': every ocean chunk is stored exactly"),
    Mutation(
        "codec_get_config_drops_the_new_bounds", ("xdiffc/codec.py",),
        (("        config.update(bounds)\n", ""),),
        ("tests/test_levels.py::test_codecs_carry_the_level_in_their_configuration_only_when_set",
         "tests/test_fidelity.py::test_bound_types_round_trip_through_numcodecs_and_zarr_v3"),
        "get_config drops pw_rel_tol, preserve_zero, valid_range and level"),
    Mutation(
        "zarr_config_not_normalised", ("xdiffc/zarr_codec.py",),
        (("json.dumps(codec.get_config(), sort_keys=True)", "json.dumps(config, sort_keys=True)"),),
        ("tests/test_levels.py::test_codecs_carry_the_level_in_their_configuration_only_when_set",
         "tests/test_zarr.py::test_dict_round_trip_and_registry"),
        "the Zarr codec keeps its arguments as given, not the parsed configuration (equality, numpy scalars)"),
    Mutation(
        "sz3_trailing_bytes_accepted", ("xdiffc/coders/sz3.py",),
        (("        if len(r.rest()):\n", "        if False:\n"),),
        ("tests/test_coders.py::test_a_truncated_payload_raises_corrupt_stream_error",
         "tests/test_engine_audit.py::test_sz3_payload_version_2_checks_its_length_and_version_1_still_reads"),
        "version 2's check for bytes after the SZ3 stream removed"),
    Mutation(
        "sz3_length_unchecked", ("xdiffc/coders/sz3.py",),
        (("body = r.take(r.uvarint(len(payload)))", "r.uvarint(len(payload))\n        body = r.rest()"),),
        ("tests/test_coders.py::test_a_truncated_payload_raises_corrupt_stream_error",),
        "version 2's length prefix read but not checked: a stream cut short by a byte decodes"),
    Mutation(
        "sz3_decode_dtype_ignored", ("xdiffc/coders/sz3.py",),
        (("return np.asarray(out, dtype or np.float64).reshape(shape)",
          "return np.asarray(out, np.float64).reshape(shape)"),),
        ("tests/test_coders.py::test_round_trip_under_the_bound_and_bit_identical",),
        "SZ3's decode ignores the dtype asked for"),
    Mutation(
        "sz3_version_1_unreadable", ("xdiffc/coders/sz3.py",),
        (("        body = r.rest()\n", "        raise CorruptStreamError(\"SZ3 payload version 1\")\n"),),
        ("tests/test_golden.py::test_golden_stream_decodes_to_its_hash",),
        "version 1 SZ3 payloads (written before 0.3) no longer read"),
    Mutation(
        "bound_attrs_preserve_zero_only_when_asked", ("xdiffc/xarray/encoding.py",),
        (("({ATTR_PRESERVE_ZERO: 1} if options.keep_sign else {})",
          "({ATTR_PRESERVE_ZERO: 1} if options.preserve_zero else {})"),),
        ("tests/test_fidelity.py::test_accessor_records_bound_types_and_checks_them",
         "tests/test_engine_audit.py::test_a_pointwise_relative_bound_marks_the_variable_as_keeping_zeros_and_signs"),
        "a variable with pw_rel_tol (zeros and signs kept) not marked xdiffc_preserve_zero unless asked"),
    Mutation(
        "bound_plan_l2_drops_the_level", ("xdiffc/xarray/encoding.py",),
        (('Options(mode="l2", nrmse=self.rel_tol[name], level=options.level)',
          'Options(mode="l2", nrmse=self.rel_tol[name])'),),
        ("tests/test_levels.py::test_the_accessor_writes_at_the_level_asked_for",
         "tests/test_engine_audit.py::test_the_accessor_in_l2_mode_writes_at_the_level_asked_for"),
        "ds.gcdtc in l2 mode writes at level 9 whatever the level asked for"),
    Mutation(
        "bound_plan_pointwise_drops_the_level", ("xdiffc/xarray/encoding.py",),
        (("self.options[name] = replace(given, tol=tol,",
          "self.options[name] = replace(given, level=DEFAULT_LEVEL, tol=tol,"),),
        ("tests/test_levels.py::test_the_accessor_writes_at_the_level_asked_for",),
        "ds.gcdtc writes at level 9 whatever the level asked for"),
    Mutation(
        "dataset_options_rel_tol_in_l2", ("xdiffc/xarray/encoding.py",),
        (('rel_tol=None if mode == "l2" else rel_tol', 'rel_tol=rel_tol'),),
        ("tests/test_api.py::test_l2_mode_on_a_field_with_zeros_needs_no_preserve_zero",),
        "the accessor's default rel_tol (1e-3) passed on in l2 mode, where the options refuse it"),
    Mutation(
        "bound_kwargs_l2_drops_the_level", CONVERSION,
        (('return dataset_options(mode="l2", nrmse=parsed["rel_tol"], level=level)',
          'return dataset_options(mode="l2", nrmse=parsed["rel_tol"])'),),
        ("tests/test_convert.py::test_convert_at_a_level_writes_it_in_the_codec_and_keeps_the_bound",
         "tests/test_engine_audit.py::test_convert_passes_the_level_on_only_where_it_is_not_the_default"),
        "convert --mode l2 --level N writes at level 9"),
    Mutation(
        "bound_kwargs_level_always", CONVERSION,
        (('return recorded | ({} if options.level == DEFAULT_LEVEL else {"level": options.level})',
          'return recorded | {"level": options.level}'),),
        ("tests/test_convert.py::test_convert_at_a_level_writes_it_in_the_codec_and_keeps_the_bound",
         "tests/test_engine_audit.py::test_convert_passes_the_level_on_only_where_it_is_not_the_default"),
        "the default level recorded in the resume fingerprint: progress logs written before --level do not resume"),
    Mutation(
        "edge_chunk_lossy_taken_as_exact", ("xdiffc/xarray/edges.py",),
        (('exact = Stream.from_bytes(blob.to_bytes()).header.mode == "lossless"', "exact = True"),),
        ("tests/test_writes.py::test_append_onto_a_partial_chunk_stored_lossily_is_refused_and_the_store_is_untouched",),
        "an accessor append completes a partial chunk stored lossily (its error could double)"),
    Mutation(
        "append_dask_chunks_not_offset", ("xdiffc/xarray/encoding.py",),
        (("first = min(n, c - offsets.get(dim, 0) % c)", "first = min(n, c)"),),
        ("tests/test_writes.py::test_any_sequence_of_appends_keeps_the_bound",),
        "appended Dask chunks not lined up with the store's partial chunk: two tasks would write one Zarr chunk"),
    Mutation(
        "verify_chunks_of_the_dataarray", ("xdiffc/conversion/verify.py",),
        (("for d, c in out[n].variable.chunksizes.items()", "for d, c in out[n].chunksizes.items()"),),
        ("tests/test_writes.py::test_verify_reads_a_store_grown_by_the_documented_accessor_append",),
        "verify reads the chunks of a lossy DataArray, coordinates included: inconsistent along time, it fails"),
    Mutation(
        "exact_variables_not_chunked_along_time", ("xdiffc/xarray/writes.py",),
        (("if set(var.dims) & along_time.keys() and var.dims != (name,):", "if False:"),),
        ("tests/test_writes.py::test_verify_reads_a_store_grown_by_the_documented_accessor_append",),
        "time bounds and coordinates along time chunked otherwise than the data"),
    Mutation(
        "resume_of_a_finished_store_unchecked", CONVERSION,
        (("            _check_finished(store, fingerprint)\n", ""),),
        ("tests/test_append.py::test_resume_on_a_finished_store_checks_its_inputs_and_options",),
        "--resume on a finished store of other inputs or options says 'already complete' and exits 0"),
    Mutation(
        "append_unit_reads_only_the_new_steps", CONVERSION,
        (("        if steps.start < length:", "        if False:"),),
        ("tests/test_append.py::test_appends_continue_the_store_with_its_codec_within_the_bound",),
        "the chunk that held the store's last steps is written from the new ones alone"),
)


@dataclass
class Result:
    name: str
    status: str
    file: str | None = None
    tests: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""


def candidates(m: Mutation) -> list[Path]:
    paths: list[Path] = []
    for pattern in m.files:
        for p in sorted(glob.glob(str(ROOT / pattern))):
            if Path(p).is_file() and Path(p) not in paths:
                paths.append(Path(p))
    return paths


def locate(m: Mutation) -> tuple[Path, str, str] | None:
    """The file and the edit that apply: the first alternative whose old text occurs exactly once in one file."""
    for old, new in m.edits:
        hits = [p for p in candidates(m) if p.read_text().count(old) == 1]
        if len(hits) == 1:
            return hits[0], old, new
    return None


def leftovers() -> list[str]:
    """Mutations whose new text is already in a file (a run killed before it could revert)."""
    found = []
    for m in MUTATIONS:
        texts = {p: p.read_text() for p in candidates(m)}
        for old, new in m.edits:
            if not any(old in t for t in texts.values()):
                found += [f"{m.name}: {p.relative_to(ROOT)}" for p, t in texts.items() if new in t]
    return found


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_one(m: Mutation, timeout: float, python: str) -> Result:
    where = locate(m)
    if where is None:
        return Result(m.name, "stale", None, list(m.tests), detail="the old text is in no candidate file")
    path, old, new = where
    rel = str(path.relative_to(ROOT))
    if not m.tests:
        return Result(m.name, "no-test", rel, [], detail="no test listed")
    original = path.read_bytes()
    start = time.monotonic()
    try:
        path.write_bytes(original.replace(old.encode(), new.encode(), 1))
        cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(m.name, "error", rel, list(m.tests), time.monotonic() - start, f"timeout after {timeout} s")
    finally:
        path.write_bytes(original)
    lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
    status = {0: "survived", 1: "caught", 4: "no-test", 5: "no-test"}.get(proc.returncode, "error")
    return Result(m.name, status, rel, list(m.tests), time.monotonic() - start,
                  f"pytest exit {proc.returncode}: {lines[-1] if lines else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutation (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run (default 900)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown mutations {unknown}; known: {sorted(names)}")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            where = locate(m)
            print(json.dumps({"name": m.name, "file": where and str(where[0].relative_to(ROOT)),
                              "old": where and where[1], "new": where and where[2], "tests": m.tests, "why": m.why}))
        return 0
    left = leftovers()
    if left:
        print(f"mutated text already present (git checkout these files first): {left}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    results: list[Result] = []
    try:
        for m in chosen:
            print(f"{m.name} ...", file=sys.stderr, end=" ", flush=True)
            results.append(run_one(m, args.timeout, args.python))
            print(f"{results[-1].status} ({results[-1].seconds:.0f} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: every file restored", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    applied = [r for r in results if r.status != "stale"]
    caught = sum(r.status == "caught" for r in results)
    summary = {"results": [asdict(r) for r in results],
               "counts": {s: sum(r.status == s for r in results)
                          for s in ("caught", "survived", "no-test", "error", "stale")},
               "kill_rate": round(caught / len(applied), 4) if applied else None,
               "interrupted": len(results) < len(chosen)}
    print(json.dumps(summary, indent=1))
    return 0 if applied and caught == len(applied) and not summary["interrupted"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Write config/synths/diva.yaml and config/synths/talnm.yaml: the paper's Diva and TAL-NoiseMaker specs.

Facts transcribed from the paper's repository, pcmbs/synth-proxy (snapshot at commit bc3fcc4, 2025-10-02;
newest version of each file):

- ``src/data/synths/diva.py`` (last changed in 0647bf6) and ``src/data/synths/talnm.py`` (289098a): one
  ``SynthParameter(index, name, type_, default_value, cardinality, cat_values, cat_weights, interval,
  excluded_cat_idx)`` per plugin parameter, transcribed below as ``P(...)`` rows with the same meaning;
- ``configs/export/synth/diva.yaml`` and ``configs/export/synth/talnm.yaml`` (ce7e89d):
  ``parameters_to_exclude_str``, matched exactly as ``PresetHelper._exclude_parameters`` does
  (``src/utils/synth/preset_helper.py``): equal name, ``prefix*``, ``*suffix`` or ``*infix*``;
- ``src/utils/synth/synth_parameter.py``: the value grid of a discrete parameter is
  ``np.linspace(0, 1, cardinality).round(3)`` unless ``cat_values`` is given, then ``excluded_cat_idx``
  entries are deleted from it.

Translation: continuous numerical parameters keep ``interval`` when it is not (0, 1); a discrete parameter
gets ``cardinality`` when the repository's rounded grid equals synthproxy's unrounded
``np.linspace(0, 1, cardinality)`` exactly, and explicit ``values`` otherwise (rounding changed a value, an
entry was excluded or ``cat_values`` was given), so the plugin receives the numbers the paper's code sent.

Plugin indices the repository leaves out (commented out there and never set by its renderer: Diva 3,
TAL-NM 0, 69 and 70) are listed as excluded ``U(...)`` rows under the names its comments give, so that a
spec position equals the plugin index, as in the repository.

Run it again only to change the specs; the YAML files are what the workflow reads.
"""

from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
REPO = "pcmbs/synth-proxy"

# Diva modulation sources (24 categories). For LFOs, OSCs, filters, amplifier, ...: keep None, Env1, Env2,
# LFO1, LFO2, Quantise, Lag, Multiply. For the MOD group's own sources: keep Env1, Env2, LFO1, LFO2.
EXCL_MOD = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 19, 22)
EXCL_MOD_GROUP = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 19, 20, 21, 22, 23)
_EXCL_NOTES = {
    EXCL_MOD: "mod sources restricted to None, Env1, Env2, LFO1, LFO2, Quantise, Lag, Multiply",
    EXCL_MOD_GROUP: "mod sources restricted to Env1, Env2, LFO1, LFO2",
}


def P(index, name, type_, default=0.0, card=-1, values=None, weights=None, interval=(0.0, 1.0), excl=None,
      note=None):
    """One ``SynthParameter`` of the repository (same argument meanings)."""
    return {"index": index, "name": name, "type": type_, "default": default, "card": card, "values": values,
            "weights": weights, "interval": interval, "excl": excl, "note": note, "unlisted": False}


def U(index, name, type_, default=0.0, note=None):
    """A plugin parameter the repository comments out (never set by it): always excluded here."""
    return P(index, name, type_, default, note=note) | {"unlisted": True}


DIVA_EXCLUDE = (
    "main:output", "vcc:*", "opt:*", "scope1:*", "clk:*", "arp:*", "plate1:*", "delay1:*", "chrs2:*",
    "phase2:*", "rtary2:*", "*keyfollow", "*velocity", "env1:model", "env2:model", "*trigger",
    "*release_on", "env1:quantise", "env2:quantise", "env1:curve", "env2:curve", "lfo1:sync", "lfo2:sync",
    "lfo1:restart", "lfo2:restart", "mod:rectifysource", "mod:invertsource", "mod:addsource*",
    "*revision", "vca:pan", "vca:volume", "vca:vca", "vca:panmodulation", "vca:panmoddepth", "vca:mode",
    "vca:offset",
)
"""configs/export/synth/diva.yaml. The ``vca:*`` names match nothing (Diva's names are ``vca1:*``), so in
the paper's datasets the VCA parameters were *used*; Table 1's 100/22/51 counts include them."""

TALNM_EXCLUDE = (
    "master_volume", "voices", "lfo_1_sync", "lfo_1_keytrigger", "lfo_2_sync", "lfo_2_keytrigger",
    "envelope*", "portamento*", "pitchwheel*", "delay*",
)
"""configs/export/synth/talnm.yaml."""

DIVA = [
    P(0, "main:output", "num", 0.33),
    P(1, "main:active_fx1", "bin"),
    P(2, "main:active_fx2", "bin"),
    U(3, "-:led_colour", "num", note="GUI LED colour, commented out in diva.py (SettingsParameter)"),
    P(4, "vcc:voices", "num", card=8),
    P(5, "vcc:voice_stack", "num", card=6),
    P(6, "vcc:mode", "cat", 0.25, card=5),
    P(7, "vcc:glidemode", "cat", card=2),
    P(8, "vcc:glide", "num"),
    P(9, "vcc:glide2", "num", 0.5),
    P(10, "vcc:gliderange", "num", 1.0),
    P(11, "vcc:pitchbend_up", "num", card=27),
    P(12, "vcc:pitchbend_down", "num", card=27),
    P(13, "vcc:tuningmode", "bin"),
    P(14, "vcc:transpose", "num", 0.25, card=49),
    P(15, "vcc:finetunecents", "num", 0.5),
    P(16, "vcc:note_priority", "cat", card=3),
    P(17, "vcc:multicore", "cat", card=2),
    P(18, "opt:accuracy", "cat", card=4),
    P(19, "opt:offlineacc", "cat", card=2),
    P(20, "opt:tuneslop", "num", 0.25),
    P(21, "opt:cutoffslop", "num", 0.16),
    P(22, "opt:glideslop", "num", 0.24),
    P(23, "opt:pwslop", "num", 0.33),
    P(24, "opt:envrateslop", "num", 0.26),
    P(25, "opt:v1mod", "num", 0.5),
    P(26, "opt:v2mod", "num", 0.5),
    P(27, "opt:v3mod", "num", 0.5),
    P(28, "opt:v4mod", "num", 0.5),
    P(29, "opt:v5mod", "num", 0.5),
    P(30, "opt:v6mod", "num", 0.5),
    P(31, "opt:v7mod", "num", 0.5),
    P(32, "opt:v8mod", "num", 0.5),
    P(33, "env1:attack", "num", 0.01),
    P(34, "env1:decay", "num", 0.5),
    P(35, "env1:sustain", "num", 1.0),
    P(36, "env1:release", "num", 0.2, interval=(0.0, 0.5)),
    P(37, "env1:velocity", "num"),
    P(38, "env1:model", "cat", 0.5, card=3),
    P(39, "env1:trigger", "cat", card=4),
    P(40, "env1:quantise", "bin"),
    P(41, "env1:curve", "bin"),
    P(42, "env1:release_on", "bin"),
    P(43, "env1:keyfollow", "num"),
    P(44, "env2:attack", "num", 0.01),
    P(45, "env2:decay", "num", 0.5),
    P(46, "env2:sustain", "num", 1.0),
    P(47, "env2:release", "num", 0.2, interval=(0.0, 0.5)),
    P(48, "env2:velocity", "num", 0.85),
    P(49, "env2:model", "cat", 0.5, card=3),
    P(50, "env2:trigger", "cat", card=4),
    P(51, "env2:quantise", "bin"),
    P(52, "env2:curve", "bin"),
    P(53, "env2:release_on", "bin"),
    P(54, "env2:keyfollow", "num", 0.24),
    P(55, "lfo1:sync", "cat", 0.2689, card=27),
    P(56, "lfo1:restart", "cat", 0.33, card=4),
    P(57, "lfo1:waveform", "cat", card=8, excl=(6, 7)),
    P(58, "lfo1:phase", "num"),
    P(59, "lfo1:delay", "num", interval=(0.0, 0.5)),
    P(60, "lfo1:depthmod_src1", "cat", card=24, excl=EXCL_MOD),
    P(61, "lfo1:depthmod_dpt1", "num"),
    P(62, "lfo1:rate", "num", 0.5),
    P(63, "lfo1:freqmod_src1", "cat", card=24, excl=EXCL_MOD),
    P(64, "lfo1:freqmod_dpt", "num", 0.5),
    P(65, "lfo1:polarity", "cat", card=2),
    P(66, "lfo2:sync", "cat", 0.2689, card=27),
    P(67, "lfo2:restart", "cat", 0.33, card=4),
    P(68, "lfo2:waveform", "cat", card=8, excl=(6, 7)),
    P(69, "lfo2:phase", "num"),
    P(70, "lfo2:delay", "num", interval=(0.0, 0.5)),
    P(71, "lfo2:depthmod_src1", "cat", card=24, excl=EXCL_MOD),
    P(72, "lfo2:depthmod_dpt1", "num"),
    P(73, "lfo2:rate", "num", 0.5),
    P(74, "lfo2:freqmod_src1", "cat", card=24, excl=EXCL_MOD),
    P(75, "lfo2:freqmod_dpt", "num", 0.5),
    P(76, "lfo2:polarity", "cat", card=2),
    P(77, "mod:quantise", "num"),
    P(78, "mod:slew_rate", "num", 0.5),
    P(79, "mod:rectifysource", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(80, "mod:invertsource", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(81, "mod:quantisesource", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(82, "mod:lagsource", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(83, "mod:addsource1", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(84, "mod:addsource2", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(85, "mod:mulsource1", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(86, "mod:mulsource2", "cat", card=24, excl=EXCL_MOD_GROUP),
    P(87, "osc:model", "cat", card=5),
    P(88, "osc:tune1", "num", 0.5, card=5),
    P(89, "osc:tune2", "num", 0.5),
    P(90, "osc:tune3", "num", 0.5, card=5),
    P(91, "osc:vibrato", "num"),
    P(92, "osc:pulsewidth", "num", 0.5),
    P(93, "osc:shape1", "num", 0.5),
    P(94, "osc:shape2", "num", 0.5),
    P(95, "osc:shape3", "num", 0.5),
    P(96, "osc:fm", "num"),
    P(97, "osc:sync2", "bin"),
    P(98, "osc:oscmix", "num"),
    P(99, "osc:volume1", "num"),
    P(100, "osc:volume2", "num", 1.0),
    P(101, "osc:volume3", "num"),
    P(102, "osc:pulseshape", "cat", 0.33, card=4),
    P(103, "osc:sawshape", "cat", card=6),
    P(104, "osc:suboscshape", "cat", card=6),
    P(105, "osc:tune1modsrc", "cat", 0.652, card=24, excl=EXCL_MOD),
    P(106, "osc:tune1moddepth", "num", 0.5),
    P(107, "osc:tune2modsrc", "cat", 0.739, card=24, excl=EXCL_MOD),
    P(108, "osc:tune2moddepth", "num", 0.5),
    P(109, "osc:pwmodsrc", "cat", 0.739, card=24, excl=EXCL_MOD),
    P(110, "osc:pwmoddepth", "num", 0.5),
    P(111, "osc:shapesrc", "cat", 0.739, card=24, excl=EXCL_MOD),
    P(112, "osc:shapedepth", "num", 0.5),
    P(113, "osc:triangle1on", "bin"),
    P(114, "osc:sine2on", "bin"),
    P(115, "osc:saw1on", "bin", 1.0),
    P(116, "osc:pwm1on", "bin"),
    P(117, "osc:triangle2on", "bin"),
    P(118, "osc:saw2on", "bin"),
    P(119, "osc:pulse2on", "bin", 1.0),
    P(120, "osc:pwm2on", "bin", 1.0),
    P(121, "osc:noise1on", "bin", weights=(0.8, 0.2)),
    P(122, "osc:shapemodel", "cat", 0.5, card=3),
    P(123, "osc:sync3", "bin"),
    P(124, "osc:noisevol", "num"),
    P(125, "osc:noisecolor", "cat", card=2),
    P(126, "osc:tunemodosc1", "bin"),
    P(127, "osc:tunemodosc2", "bin"),
    P(128, "osc:tunemodosc3", "bin"),
    P(129, "osc:shapemodosc1", "bin"),
    P(130, "osc:shapemodosc2", "bin"),
    P(131, "osc:shapemodosc3", "bin"),
    P(132, "osc:tunemodmode", "cat", 1.0, card=4),
    P(133, "osc:ecowave1", "cat", card=4),
    P(134, "osc:ecowave2", "cat", card=4),
    P(135, "osc:ringmodpulse", "bin"),
    P(136, "osc:drift", "num", 0.2),
    P(137, "osc:fmmodsrc", "cat", card=24, excl=EXCL_MOD),
    P(138, "osc:fmmoddepth", "num", 0.5),
    P(139, "osc:noisevolmodsrc", "cat", card=24, excl=EXCL_MOD),
    P(140, "osc:noisevolmoddepth", "num", 0.5),
    P(141, "osc:digitalshape2", "num"),
    P(142, "osc:digitalshape3", "num", 0.5),
    P(143, "osc:digitalshape4", "num"),
    P(144, "osc:digitaltype1", "cat", card=7),
    P(145, "osc:digitaltype2", "cat", card=7),
    P(146, "osc:digitalantialias", "bin", 1.0),
    P(147, "hpf:model", "cat", card=4),
    P(148, "hpf:frequency", "num"),
    P(149, "hpf:resonance", "num"),
    P(150, "hpf:revision", "cat", card=2),
    P(151, "hpf:keyfollow", "num"),
    P(152, "hpf:freqmodsrc", "cat", 0.652, card=24, excl=EXCL_MOD),
    P(153, "hpf:freqmoddepth", "num", 0.5),
    P(154, "hpf:post-hpf_freq", "num", card=5),
    P(155, "vcf1:model", "cat", card=5),
    P(156, "vcf1:frequency", "num", 0.6),
    P(157, "vcf1:resonance", "num"),
    P(158, "vcf1:freqmodsrc", "cat", 0.652, card=24, excl=EXCL_MOD),
    P(159, "vcf1:freqmoddepth", "num", 0.5),
    P(160, "vcf1:freqmod2src", "cat", 0.739, card=24, excl=EXCL_MOD),
    P(161, "vcf1:freqmod2depth", "num", 0.5),
    P(162, "vcf1:keyfollow", "num"),
    P(163, "vcf1:filterfm", "num", 0.5),
    P(164, "vcf1:laddermode", "cat", card=2),
    P(165, "vcf1:laddercolor", "cat", 1.0, card=2),
    P(166, "vcf1:slnkyrevision", "cat", card=2),
    P(167, "vcf1:svfmode", "cat", card=4),
    P(168, "vcf1:feedback", "num", 0.2),
    P(169, "vcf1:resmodsrc", "cat", card=24, excl=EXCL_MOD),
    P(170, "vcf1:resmoddepth", "num", 0.5),
    P(171, "vcf1:fmamountmodsrc", "cat", card=24, excl=EXCL_MOD),
    P(172, "vcf1:fmamountmoddepth", "num", 0.5),
    P(173, "vcf1:feedbackmodsrc", "cat", card=24, excl=EXCL_MOD),
    P(174, "vcf1:feedbackmoddepth", "num", 0.5),
    P(175, "vcf1:shapemix", "num"),
    P(176, "vcf1:shapemodsrc", "cat", 0.739, card=24, excl=EXCL_MOD),
    P(177, "vcf1:shapemoddepth", "num", 0.5),
    P(178, "vcf1:uhbiebandpass", "cat", card=2),
    P(179, "vca1:pan", "num", 0.5),
    P(180, "vca1:volume", "num", 0.5),
    P(181, "vca1:vca", "cat", 1.0, card=2),
    P(182, "vca1:modulation", "cat", 0.696, card=24, excl=EXCL_MOD),
    P(183, "vca1:moddepth", "num", 0.5),
    P(184, "vca1:panmodulation", "cat", card=24, excl=EXCL_MOD),
    P(185, "vca1:panmoddepth", "num", 0.5099999904632568),
    P(186, "vca1:mode", "num"),
    P(187, "vca1:offset", "num", 0.4399999976158142),
    P(188, "scope1:frequency", "num", 0.4399999976158142),
    P(189, "scope1:scale", "num", 0.6000000238418579),
    P(190, "fx1:module", "cat", card=5, excl=(2, 3)),
    P(191, "chrs1:type", "cat", 0.5, card=3),
    P(192, "chrs1:rate", "num", 0.5),
    P(193, "chrs1:depth", "num", 0.5),
    P(194, "chrs1:wet", "num", 1.0),
    P(195, "phase1:type", "cat", card=2),
    P(196, "phase1:rate", "num", 0.5),
    P(197, "phase1:feedback", "num"),
    P(198, "phase1:stereo", "num", 0.5),
    P(199, "phase1:sync", "bin"),
    P(200, "phase1:phase", "num"),
    P(201, "phase1:wet", "num", 1.0),
    P(202, "phase1:depth", "num", 1.0),
    P(203, "phase1:center", "num", 0.5),
    P(204, "plate1:predelay", "num"),
    P(205, "plate1:diffusion", "num", 1.0),
    P(206, "plate1:damp", "num", 0.8),
    P(207, "plate1:decay", "num", 0.5, interval=(0.0, 0.5)),
    P(208, "plate1:size", "num", 0.75, interval=(0.0, 0.75)),
    P(209, "plate1:dry", "num", 0.9),
    P(210, "plate1:wet", "num", 0.4),
    P(211, "delay1:left_delay", "num", 0.07, interval=(0.0, 0.25)),
    P(212, "delay1:center_delay", "num", 0.2, interval=(0.0, 0.25)),
    P(213, "delay1:right_delay", "num", 0.2, interval=(0.0, 0.25)),
    P(214, "delay1:side_vol", "num"),
    P(215, "delay1:center_vol", "num"),
    P(216, "delay1:feedback", "num", 0.25, interval=(0.0, 0.4)),
    P(217, "delay1:hp", "num"),
    P(218, "delay1:lp", "num", 1.0),
    P(219, "delay1:dry", "num", 1.0),
    P(220, "delay1:wow", "num", 0.5),
    P(221, "rtary1:mode", "cat", card=3),
    P(222, "rtary1:mix", "num", 1.0),
    P(223, "rtary1:balance", "num", 0.5),
    P(224, "rtary1:drive", "num"),
    P(225, "rtary1:stereo", "num", 1.0),
    P(226, "rtary1:out", "num", 0.5),
    P(227, "rtary1:slow", "num", 0.3),
    P(228, "rtary1:fast", "num", 0.85),
    P(229, "rtary1:risetime", "num", 0.5),
    P(230, "rtary1:controller", "cat", card=4),
    P(231, "fx2:module", "cat", card=5, excl=(0, 1, 4)),
    P(232, "chrs2:type", "cat", 0.5, card=3),
    P(233, "chrs2:rate", "num", 0.5),
    P(234, "chrs2:depth", "num", 0.5),
    P(235, "chrs2:wet", "num", 1.0),
    P(236, "phase2:type", "cat", card=2),
    P(237, "phase2:rate", "num", 0.5),
    P(238, "phase2:feedback", "num"),
    P(239, "phase2:stereo", "num", 0.5),
    P(240, "phase2:sync", "bin"),
    P(241, "phase2:phase", "num"),
    P(242, "phase2:wet", "num", 1.0),
    P(243, "phase2:depth", "num", 1.0),
    P(244, "phase2:center", "num", 0.5),
    P(245, "plate2:predelay", "num"),
    P(246, "plate2:diffusion", "num", 1.0),
    P(247, "plate2:damp", "num", 0.8),
    P(248, "plate2:decay", "num", 0.5, interval=(0.0, 0.5)),
    P(249, "plate2:size", "num", 0.75, interval=(0.0, 0.75)),
    P(250, "plate2:dry", "num", 0.9),
    P(251, "plate2:wet", "num", 0.4),
    P(252, "delay2:left_delay", "num", 0.07, interval=(0.0, 0.25)),
    P(253, "delay2:center_delay", "num", 0.2, interval=(0.0, 0.25)),
    P(254, "delay2:right_delay", "num", 0.2, interval=(0.0, 0.25)),
    P(255, "delay2:side_vol", "num"),
    P(256, "delay2:center_vol", "num"),
    P(257, "delay2:feedback", "num", 0.25, interval=(0.0, 0.4)),
    P(258, "delay2:hp", "num"),
    P(259, "delay2:lp", "num", 1.0),
    P(260, "delay2:dry", "num", 1.0),
    P(261, "delay2:wow", "num", 0.5),
    P(262, "rtary2:mode", "cat", card=3),
    P(263, "rtary2:mix", "num", 1.0),
    P(264, "rtary2:balance", "num", 0.5),
    P(265, "rtary2:drive", "num"),
    P(266, "rtary2:stereo", "num", 1.0),
    P(267, "rtary2:out", "num", 0.5),
    P(268, "rtary2:slow", "num", 0.3),
    P(269, "rtary2:fast", "num", 0.85),
    P(270, "rtary2:risetime", "num", 0.5),
    P(271, "rtary2:controller", "cat", card=4),
    P(272, "clk:multiply", "num", 0.33),
    P(273, "clk:timebase", "cat", 0.6667, card=4),
    P(274, "clk:swing", "num"),
    P(275, "arp:direction", "cat", 0.2, card=6, excl=(0, 5)),
    P(276, "arp:octaves", "num", card=4),
    P(277, "arp:multiply", "cat", card=5),
    P(278, "arp:restart", "cat", card=13),
    P(279, "arp:onoff", "bin", weights=(0.95, 0.05)),
    P(280, "arp:order", "cat", card=4, excl=(2, 3)),
]

TALNM = [
    U(0, "-", "num", 0.5, note="commented out in talnm.py: not a synthesis parameter"),
    P(1, "master_volume", "num", 0.40800002217292786),
    P(2, "filter_type", "cat", card=12),
    P(3, "filter_cutoff", "num", 1.0),
    P(4, "filter_resonance", "num"),
    P(5, "filter_keyfollow", "num"),
    P(6, "filter_contour", "num"),
    P(7, "filter_attack", "num"),
    P(8, "filter_decay", "num"),
    P(9, "filter_sustain", "num", 1.0),
    P(10, "filter_release", "num"),
    P(11, "amp_attack", "num"),
    P(12, "amp_decay", "num"),
    P(13, "amp_sustain", "num", 1.0),
    P(14, "amp_release", "num"),
    P(15, "osc_1_volume", "num", 0.800000011920929),
    P(16, "osc_2_volume", "num"),
    P(17, "osc_3_volume", "num", 0.800000011920929),
    P(18, "osc_mastertune", "num", 0.5),
    P(19, "osc_1_tune", "num", 0.25),
    P(20, "osc_2_tune", "num", 0.5),
    P(21, "osc_1_fine_tune", "num", 0.5),
    P(22, "osc_2_fine_tune", "num", 0.5),
    P(23, "osc_1_waveform", "cat", card=3, weights=(0.45, 0.45, 0.1)),
    P(24, "osc_2_waveform", "cat", card=5),
    P(25, "osc_sync", "bin"),
    P(26, "lfo_1_waveform", "cat", card=6, excl=(4,)),
    P(27, "lfo_2_waveform", "cat", card=6, excl=(4,)),
    P(28, "lfo_1_rate", "num"),
    P(29, "lfo_2_rate", "num"),
    P(30, "lfo_1_amount", "num", 0.5),
    P(31, "lfo_2_amount", "num", 0.5),
    P(32, "lfo_1_destination", "cat", card=8),
    P(33, "lfo_2_destination", "cat", card=8),
    P(34, "lfo_1_phase", "num"),
    P(35, "lfo_2_phase", "num"),
    P(36, "osc_2_fm", "num"),
    P(37, "osc_2_phase", "num"),
    P(38, "osc_1_pw", "num", 0.5),
    P(39, "osc_1_phase", "num", 0.5),
    P(40, "transpose", "num", 0.5, card=4, values=(0.0, 0.5, 0.75, 1.0)),
    P(41, "free_ad_attack", "num"),
    P(42, "free_ad_decay", "num"),
    P(43, "free_ad_amount", "num"),
    P(44, "free_ad_destination", "cat", card=6),
    P(45, "lfo_1_sync", "bin"),
    P(46, "lfo_1_keytrigger", "bin", 1.0),
    P(47, "lfo_2_sync", "bin"),
    P(48, "lfo_2_keytrigger", "bin", 1.0),
    P(49, "portamento_amount", "num"),
    P(50, "portamento_mode", "cat", card=3),
    P(51, "voices", "cat", card=6),
    P(52, "velocity_volume", "num"),
    P(53, "velocity_contour", "num"),
    P(54, "velocity_filter", "num"),
    P(55, "pitchwheel_cutoff", "num"),
    P(56, "pitchwheel_pitch", "num"),
    P(57, "ringmodulation", "num"),
    P(58, "chorus_1_enable", "bin"),
    P(59, "chorus_2_enable", "bin"),
    P(60, "reverb_wet", "num"),
    P(61, "reverb_decay", "num", 0.5, interval=(0.0, 0.6)),
    P(62, "reverb_pre_delay", "num"),
    P(63, "reverb_high_cut", "num"),
    P(64, "reverb_low_cut", "num", 1.0),
    P(65, "osc_bitcrusher", "num", 1.0),
    P(66, "master_high_pass", "num"),
    P(67, "master_detune", "num"),
    P(68, "vintage_noise", "num"),
    U(69, "panic", "bin", note="commented out in talnm.py: not a synthesis parameter"),
    U(70, "midi_learn", "bin", note="commented out in talnm.py: not a synthesis parameter"),
    P(71, "envelope_destination", "cat", card=8),
    P(72, "envelope_speed", "num", card=6),
    P(73, "envelope_amount", "num"),
    P(74, "envelope_one_shot_mode", "bin"),
    P(75, "envelope_fix_tempo", "bin"),
    P(76, "envelope_reset", "bin"),
    P(77, "filter_drive", "num"),
    P(78, "delay_wet", "num"),
    P(79, "delay_time", "num", 0.5),
    P(80, "delay_sync", "bin"),
    P(81, "delay_x2_l", "bin"),
    P(82, "delay_x2_r", "bin"),
    P(83, "delay_high_shelf", "num"),
    P(84, "delay_low_shelf", "num"),
    P(85, "delay_feedback", "num", 0.5),
]

TABLE_1 = {
    "diva": {"num": 100, "bin": 22, "cat": 51, "total": 173},
    "talnm": {"num": 48, "bin": 3, "cat": 8, "total": 59},
}


def matches(name: str, pattern: str) -> bool:
    """``PresetHelper._exclude_parameters``' pattern rule."""
    return (
        name == pattern
        or (pattern.endswith("*") and name.startswith(pattern[:-1]))
        or (pattern.startswith("*") and name.endswith(pattern[1:]))
        or (pattern.startswith("*") and pattern.endswith("*") and pattern[1:-1] in name)
    )


def _num(x) -> float:
    """Plain Python float (yaml.safe_dump cannot write numpy scalars)."""
    return float(x)


def translate(row: dict, exclude: tuple[str, ...]) -> dict:
    """One repository parameter -> one spec entry."""
    out: dict = {"name": row["name"], "type": row["type"]}
    kind, card = row["type"], row["card"]
    continuous = kind == "num" and card == -1
    if continuous:
        assert row["values"] is None and row["weights"] is None and row["excl"] is None, row
        if tuple(row["interval"]) != (0.0, 1.0):
            out["interval"] = [_num(v) for v in row["interval"]]
    else:
        assert tuple(row["interval"]) == (0.0, 1.0), f"interval on a discrete parameter: {row}"
        if kind == "bin":
            card = 2
        if row["values"] is not None:
            grid = tuple(row["values"])
            assert len(grid) == card, row
        else:
            grid = tuple(np.linspace(0.0, 1.0, card).round(3))
        if row["excl"] is not None:
            grid = tuple(np.delete(np.asarray(grid), row["excl"]))
        unrounded = tuple(np.linspace(0.0, 1.0, card))
        if kind != "bin":
            if grid == unrounded:
                out["cardinality"] = card
            else:
                out["values"] = [_num(v) for v in grid]
        else:
            assert grid == (0.0, 1.0), row
        if row["weights"] is not None:
            assert len(row["weights"]) == len(grid), row
            out["weights"] = [_num(w) for w in row["weights"]]
    out["default"] = _num(row["default"])
    if row["unlisted"] or any(matches(row["name"], pat) for pat in exclude):
        out["excluded"] = True
    notes = [row["note"]] if row["note"] else []
    if row["excl"] is not None:
        notes.append(_EXCL_NOTES.get(tuple(row["excl"]), f"categories {list(row['excl'])} of {card} excluded"))
    if notes:
        out["note"] = "; ".join(notes)
    return out


def build(name: str, rows: list[dict], exclude: tuple[str, ...]) -> list[dict]:
    assert [r["index"] for r in rows] == list(range(len(rows))), f"{name}: indices not contiguous"
    params = [translate(r, exclude) for r in rows]
    used = [p for p in params if not p.get("excluded")]
    counts = {k: sum(p["type"] == k for p in used) for k in ("num", "bin", "cat")} | {"total": len(used)}
    assert counts == TABLE_1[name], f"{name}: {counts} != Table 1 {TABLE_1[name]}"
    return params


def _compact(params: list[dict]) -> str:
    """YAML list with one flow mapping per parameter (block style only where lists make it long)."""
    lines = []
    for p in params:
        flow = yaml.safe_dump([p], sort_keys=False, width=10_000, default_flow_style=True).strip()[1:-1]
        if len(flow) + 2 <= 118:
            lines.append(f"- {flow}")
        else:
            block = yaml.safe_dump([p], sort_keys=False, width=110, default_flow_style=None)
            lines.append(block.rstrip("\n"))
    return "\n".join(lines) + "\n"


def write(name: str, title: str, plugin: str, rows: list[dict], exclude: tuple[str, ...],
          files: str, excl_file: str, extra: str) -> None:
    params = build(name, rows, exclude)
    c = TABLE_1[name]
    header = (
        f"# Generated by tools/write_vst_specs.py; edit that script, not this file.\n"
        f"# {title}: all {len(params)} plugin parameters in plugin order (spec position = plugin index).\n"
        f"# Facts from the paper's repository {REPO} (commit bc3fcc4): names, types, defaults, cardinalities,\n"
        f"# value grids (np.linspace(0, 1, n).round(3) minus excluded_cat_idx), weights and intervals from\n"
        f"# {files}; exclusions from {excl_file}.\n"
        f"# Used parameters: {c['num']} numerical, {c['bin']} binary, {c['cat']} categorical = {c['total']},\n"
        f"# as in Table 1 of Combes et al. (JAES 2025).\n"
        f"{extra}"
    )
    top = {
        "name": name,
        "engine": "vst",
        "plugin": plugin,
        "description": f"{title}; the paper's {c['total']} used parameters ({c['num']} numerical, "
        f"{c['bin']} binary, {c['cat']} categorical).",
        "source": f"{REPO} {files} and {excl_file}",
    }
    body = yaml.safe_dump(top, sort_keys=False, width=110) + "parameters:\n" + _compact(params)
    out = ROOT / "config" / "synths" / f"{name}.yaml"
    out.write_text(header + body)
    print(f"wrote {out.relative_to(ROOT)}: {len(params)} parameters, used {c}")


def main() -> None:
    write(
        "diva", "u-he Diva (VST2)", "/usr/lib/vst/Diva.so", DIVA, DIVA_EXCLUDE,
        "src/data/synths/diva.py", "configs/export/synth/diva.yaml",
        "# The export config's 'vca:*' patterns match no Diva name (the plugin's are 'vca1:*'), so the VCA\n"
        "# parameters are used, as in the paper's datasets (Table 1's counts require it).\n",
    )
    write(
        "talnm", "TAL-NoiseMaker (VST2)", "/usr/lib/vst/TAL-NoiseMaker.so", TALNM, TALNM_EXCLUDE,
        "src/data/synths/talnm.py", "configs/export/synth/talnm.yaml", "",
    )


if __name__ == "__main__":
    main()

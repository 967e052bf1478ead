"""RTL of H2Learn's processing elements (Amaranth), their simulation, synthesis and cost table.

* :mod:`~h2learn.rtl.datapath`: one arithmetic interface over the fixed-point
  (:mod:`~h2learn.rtl.fixed`) and IEEE floating-point (:mod:`~h2learn.rtl.floating`) units;
* :mod:`~h2learn.rtl.pe_lut`, :mod:`~h2learn.rtl.pe_forward`, :mod:`~h2learn.rtl.pe_update`:
  the LUT PE lane of the Forward and Weight Update Engines;
* :mod:`~h2learn.rtl.pe_backward`: the Backward Engine's dual-sparsity MAC;
* :mod:`~h2learn.rtl.lif_unit`, :mod:`~h2learn.rtl.lif_backward`: the element-wise LIF
  neuron with its surrogate window, and its BPTT step;
* :mod:`~h2learn.rtl.simulate`: many cases per Amaranth simulator run;
* :mod:`~h2learn.rtl.synth`: Verilog/RTLIL export and Yosys cell counts;
* :mod:`~h2learn.rtl.cost_table`: area and energy per action derived from them.

See ``docs/rtl.md``.
"""

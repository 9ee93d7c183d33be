"""Speed and memory of the stages on this machine, behind one command, `dreamflow perf`:

* `throughput.py` (`dreamflow perf throughput`): s/iteration against the method's floor, UNet share,
  host-device synchronisations and peak memory per stage and method;
* `gpu_report.py` (`dreamflow perf gpu-report`): the GPU check's rows, each in its own process, and
  their report (run by `scripts/gpu_check.sh`, docs/guides/gpu.md);
* `stages.py` (`dreamflow perf stages`): every stage end to end (training, extraction, export), its
  peak GPU memory and time per iteration;
* `memory.py` (`dreamflow perf memory`): peak GPU memory per stage at config/paper.yaml's settings,
  estimated on a CPU.
"""

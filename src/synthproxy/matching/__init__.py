"""Sound matching: estimator networks that hear a sound and predict a preset, trained with parameter losses and
audio losses (through a frozen proxy for black-box synths, paper 1 Sec. 8; through the differentiable synth
itself, paper 2), judged by rendering their predictions on the real synth; and the WAV → preset tool."""

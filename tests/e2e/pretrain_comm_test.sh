#!/usr/bin/env bash
# ZeRO-3 traffic: the comm_bytes a rank logs for each step is exactly what the
# sharding rules predict from the model dimensions (pretrain_formulas.py):
# all-gathers and reduce-scatters of the padded units plus four small
# all-reduces. Both modes on 2 and 4 ranks: re-gathering blocks for backward
# (trainer.keep_gathered false) and keeping them (true; once with two
# micro-batches per step, once without activation checkpointing).
# model.dim 120 makes every unit need shard padding.
#   pretrain_comm_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
common=(--set trainer.steps=2 --set model.dim=120)
train 2 regather_np2 "${common[@]}"
train 4 regather_np4 "${common[@]}"
train 2 keep_np2_accum2 "${common[@]}" --set trainer.keep_gathered=true --set trainer.grad_accum=2
train 4 keep_np4 "${common[@]}" --set trainer.keep_gathered=true --set trainer.activation_checkpointing=false
for run in regather_np2 regather_np4 keep_np2_accum2 keep_np4; do
  np=${run#*_np}
  np=${np%%_*}
  want=$("$py" "$(dirname "$0")/pretrain_formulas.py" comm "$runs/$run" "$np")
  got=$(grep -o '"comm_bytes": [0-9]*' "$(metrics $run)" | cut -d' ' -f2 | sort -u)
  echo "$run: comm_bytes per step $got, formula $want"
  [[ $(wc -l <"$(metrics $run)") == 2 ]] || fail "$run: expected 2 records"
  [[ $got == "$want" ]] || fail "$run: comm_bytes per step $got, expected $want"
done
echo "communication volume matches the formula"

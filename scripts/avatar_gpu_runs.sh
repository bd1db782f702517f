#!/usr/bin/env bash
# Train faceedit's avatar models on one GPU inside a fixed time budget, and pack what
# they produced into small files. Every stage is an ordinary faceedit training command;
# a stage that reaches its deadline is stopped and exported from its last checkpoint
# (re-running a training command with the step budget set to that checkpoint's step
# resumes it and writes the model without training further).
#
#   scripts/avatar_gpu_runs.sh RUNS_DIR PACK_DIR [BUDGET_SECONDS]
#
# Stages, run side by side on the one GPU (deadlines in seconds from the start):
#   data       faceedit data avatars --n 30000 --seed 0 (skipped when present)
#   oracle     the perception oracle the encoder's identity losses read (seed 1)
#   stylegan2  a wider avatar StyleGAN2 (channel max 128), until STYLEGAN_END
#   encoder    the inverter for that generator, until the budget's end
#   attgan     a wider AttGAN (encoder/decoder 64, critic 48), at lr 2e-4 until
#              ATTGAN_A_END, then from that model at lr 2e-5 until the end
#   style      an AttGAN with one style controller per attribute (lambda_style 5)
# Measured on one H200 (16 cores) with BUDGET 540, all stages side by side: data 11 s,
# oracle 110 s, StyleGAN2 1,500 steps in 285 s (about 5 steps/s), encoder 492 steps,
# wide AttGAN 5,000 + 2,000 steps (about 13 steps/s), style AttGAN 8,000 steps. These
# models are small and the step loops launch-bound: four processes time-slicing one GPU
# got little more than the 2-core CPU does. Before the next run: one stage at a time, far
# larger batches, and graph capture of the step.
#
# PACK_DIR receives models.tar split into parts of 15 MB (weights rounded to float16 to
# fit the transfer, the runs' records and logs) and stages.log;
# scripts/unpack_gpu_models.py restores them. DATA= points at a rendered dataset to reuse.
set -uo pipefail
RUNS=${1:?RUNS_DIR}
PACK=${2:?PACK_DIR}
BUDGET=${3:-555}
PY=${PYTHON:-python3}
FE="$PY -m faceedit"
START=$(date +%s)
mkdir -p "$RUNS" "$PACK"
LOGS="$RUNS/logs"
mkdir -p "$LOGS"
LOG="$PACK/stages.log"
now() { echo $(($(date +%s) - START)); }
note() { echo "[$(now)s] $*" | tee -a "$LOG"; }
left() { local t=$(($1 - $(now))); [ $t -lt 1 ] && t=1; echo $t; }
ckpt_step() {  # the step of a run's last checkpoint, 0 when none
    $PY -c "import sys; from faceedit.train.checkpointing import read_checkpoint_file as r
try: print(int(r(sys.argv[1])['step']))
except Exception: print(0)" "$1/checkpoint.pt"
}
STYLEGAN_END=$((BUDGET * 54 / 100))
ATTGAN_A_END=$((BUDGET * 72 / 100))
END=$((BUDGET - 12))
DATA=${DATA:-$RUNS/avatars30k}
ATTRS="[Bald, Black_Hair, Blond_Hair, Brown_Hair, Eyeglasses, Mouth_Slightly_Open, Mustache, No_Beard, Pale_Skin, Smiling, Wearing_Hat, Dark_Skin, Eyes_Closed]"
DEV=${DEVICE:-cuda}
SMALL=${SMALL:-0}  # 1: a quick check of this script on a CPU (tiny data and models)
widths() {  # ENC_DEC DIS DIS_FC: the width lines of an AttGAN config
    printf 'enc_dim: %s\ndec_dim: %s\ndis_dim: %s\ndis_fc_dim: %s\n' "$1" "$1" "$2" "$3"
}
N_DATA=30000; ORACLE_EPOCHS=${ORACLE_EPOCHS:-6}; SAVE=${SAVE:-500}
WIDE=$(widths 64 48 384); STYLE_WIDTHS=$(widths 32 32 256)
if [ "$SMALL" = 1 ]; then
    N_DATA=300; ORACLE_EPOCHS=1; SAVE=2; WIDE=$(widths 8 8 16); STYLE_WIDTHS=$WIDE
fi

if [ ! -f "$DATA/dataset.json" ]; then
    note "data: rendering $N_DATA avatars"
    $FE data avatars --n $N_DATA --size 64 -o "$DATA" --seed 0 -q >>"$LOG" 2>&1 || { note "data failed"; exit 1; }
fi
note "data ready"

attgan_yaml() {  # NAME WIDTH_BLOCK EXTRA
    cat >"$RUNS/$1.yaml" <<YAML
data: custom
data_path: $DATA/images
attr_path: $DATA/list_attr_celeba.txt
attrs: $ATTRS
img_size: 64
$2
enc_layers: 4
dec_layers: 4
dis_layers: 4
shortcut_layers: 2
inject_layers: 1
batch_size: 64
num_workers: 3
epochs: 100000
lr_decay_epochs: 100000
save_interval: $((SAVE * 2))
sample_interval: 2000
tensorboard: false
progress: false
out_dir: $RUNS/$1
device: $DEV
conflict_rules: avatars
cls_blur: 1.0
cls_fake: 1.0
b_distribution: uniform
lambda_1: 150.0
lambda_2: 20.0
$3
YAML
}

run_until() {  # DEADLINE NAME RUN_DIR EXPORT_FLAG CMD...: train until the deadline, then export
    local deadline=$1 name=$2 dir=$3 flag=$4; shift 4
    if [ "$(( deadline - $(now) ))" -lt 10 ]; then note "$name: no time left, skipped"; return; fi
    note "$name: start"
    timeout -k 8 -s INT "$(left "$deadline")" "$@" >>"$LOGS/$name.log" 2>&1
    local rc=$? step; step=$(ckpt_step "$dir")
    note "$name: stopped (rc $rc) at checkpoint step $step"
    if [ "$step" -gt 0 ]; then
        "$@" "$flag" "$step" >>"$LOGS/$name.log" 2>&1 && note "$name: exported at step $step" \
            || note "$name: export failed"
    fi
}

# the perception oracle (needed by the encoder), beside everything else
( note "oracle: start"
  timeout -k 8 -s INT "$(left "$END")" $FE train oracle --data "$DATA" -o "$RUNS/perception-oracle" --epochs $ORACLE_EPOCHS --seed 1 \
      --device $DEV -q >>"$LOGS/oracle.log" 2>&1 && note "oracle: done" || note "oracle failed" ) &

# StyleGAN2, then its encoder
( SG_ARGS=(--data "$DATA/images" -o "$RUNS/stylegan2" --resolution 64 --channel-base 4096
           --channel-max 128 --batch-size 32 --checkpoint-every $((SAVE / 2 > 0 ? SAVE / 2 : 1)) --sample-every 2000
           --seed 0 --device $DEV -q)
  run_until $STYLEGAN_END stylegan2 "$RUNS/stylegan2" --steps $FE train stylegan2 "${SG_ARGS[@]}" --steps 10000000
  # the oracle runs in a sibling subshell: wait for its model file
  while [ ! -f "$RUNS/perception-oracle/model.safetensors" ] && [ "$(now)" -lt "$END" ]; do sleep 2; done
  ENC_ARGS=(--generator "$RUNS/stylegan2/generator" --data "$DATA" -o "$RUNS/encoder" --batch-size 32
            --perceptual "$RUNS/perception-oracle" --lambda-perceptual 3 --lambda-identity 1
            --eval-every 100000 --checkpoint-every 200 --seed 0 --device $DEV -q)
  t0=$(now)
  note "encoder: probe of 100 steps"
  timeout -k 8 -s INT "$(left "$END")" $FE train encoder "${ENC_ARGS[@]}" --steps 100 >>"$LOGS/encoder.log" 2>&1
  dt=$(( $(now) - t0 )); [ $dt -lt 1 ] && dt=1
  n=$(( 100 * ($END - $(now)) * 9 / (10 * dt) )); [ $n -lt 101 ] && n=101
  note "encoder: 100 steps took ${dt}s; planning $n steps"
  run_until $END encoder "$RUNS/encoder" --steps $FE train encoder "${ENC_ARGS[@]}" --steps $n
) &

# the wider AttGAN: lr 2e-4, then a tenth of it from that model with fresh optimisers
( attgan_yaml attgan-wide "$WIDE" ""
  run_until $ATTGAN_A_END attgan-wide "$RUNS/attgan-wide" --max-steps $FE train attgan --config "$RUNS/attgan-wide.yaml" --max-steps 100000000
  attgan_yaml attgan-wide-b "$WIDE" "lr: 0.00002
init_from: $RUNS/attgan-wide/model"
  run_until $END attgan-wide-b "$RUNS/attgan-wide-b" --max-steps $FE train attgan --config "$RUNS/attgan-wide-b.yaml" --max-steps 100000000
) &

# AttGAN with style controllers (the attribute-style extension), from scratch
( attgan_yaml attgan-style "$STYLE_WIDTHS" "style_dim: 1
lambda_style: 5.0"
  run_until $END attgan-style "$RUNS/attgan-style" --max-steps $FE train attgan --config "$RUNS/attgan-style.yaml" --max-steps 100000000
) &

wait
note "packing"
# the first AttGAN phase is packed only when the second produced nothing
[ -f "$RUNS/attgan-wide-b/model/model.safetensors" ] && export PACK_SKIP="attgan-wide/model"
$PY "$(dirname "$0")/pack_gpu_models.py" "$RUNS" "$PACK" >>"$LOG" 2>&1 || note "packing failed"
note "done"
for f in "$LOGS"/*.log; do echo "== $f"; tail -4 "$f"; done >>"$LOG"
ls -la "$PACK" | tee -a "$LOG"

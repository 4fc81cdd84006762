# Seed corpus of the ONNX loader's fuzz target: a few small ONNX conformance models (Debian's
# libonnx-testdata). Included by fuzz/CMakeLists.txt: copied to seeds/ in the libFuzzer build,
# replayed by the ctest fuzz_replay_onnx_load in every other build.
set(VT_FUZZ_SEEDS test_add test_matmul_2d test_gemm_default_scalar_bias test_conv_with_strides_padding
    test_reshape_reordered_all_dims test_transpose_default test_softmax_axis_1 test_constant
    test_slice test_concat_1d_axis_0 test_layer_normalization_2d_axis0 test_gather_0 test_clip
    test_resize_upsample_scales_nearest test_split_equal_parts_1d test_reduce_mean_keepdims_example)
set(VT_FUZZ_SEED_FILES "")
foreach(s ${VT_FUZZ_SEEDS})
  set(src /usr/include/onnx/backend/test/data/node/${s}/model.onnx)
  if(EXISTS ${src})
    list(APPEND VT_FUZZ_SEED_FILES ${src})
  endif()
endforeach()

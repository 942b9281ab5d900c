{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "defines": ["EIGEN_MPL2_ONLY", "EIGEN_NO_DEBUG", "NAPI_VERSION=8"],
    "include_dirs": ["<!(node ../scripts/gyp-sources.js eigen)"],
    "xcode_settings": {
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "MACOSX_DEPLOYMENT_TARGET": "10.15",
      "OTHER_CPLUSPLUSFLAGS": ["-O3"]
    }
  },
  "targets": [
    {
      "target_name": "dac_isa",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["dac_sse41", "dac_avx2", "dac_avx512"],
          "defines": ["DAC_HAVE_X86_VARIANTS=1"]
        }],
        ["target_arch=='arm64'", {
          "sources": ["<!@(node ../scripts/gyp-sources.js neon)"],
          "defines": ["DAC_HAVE_NEON_VARIANTS=1"]
        }]
      ]
    },
    {
      "target_name": "dac_addon",
      "sources": ["../native/addon.cc", "<!@(node ../scripts/gyp-sources.js portable)"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api", "dac_isa"],
      "conditions": [
        ["target_arch=='x64'", { "defines": ["DAC_HAVE_X86_VARIANTS=1"] }],
        ["target_arch=='arm64'", { "defines": ["DAC_HAVE_NEON_VARIANTS=1"] }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "dac_sse41",
          "type": "static_library",
          "sources": ["<!@(node ../scripts/gyp-sources.js sse41)"],
          "cflags_cc": ["-msse4.1"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-msse4.1"] }
        },
        {
          "target_name": "dac_avx2",
          "type": "static_library",
          "sources": ["<!@(node ../scripts/gyp-sources.js avx2)"],
          "cflags_cc": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx2", "-mfma"] }
        },
        {
          "target_name": "dac_avx512",
          "type": "static_library",
          "sources": ["<!@(node ../scripts/gyp-sources.js avx512)"],
          "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma"] }
        }
      ]
    }]
  ]
}

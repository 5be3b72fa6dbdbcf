{
  # One build: the action compiles the Go library (cmd/libwsbroker) as a C shared library next to
  # the addon, and the target compiles the C glue (napi/) against its generated header.
  "targets": [
    {
      "target_name": "libwsbroker",
      "type": "none",
      "actions": [
        {
          "action_name": "go_build",
          "inputs": [
            "go.mod",
            "go.sum",
            "<!@(find broker brokermetrics internal cmd/libwsbroker -name '*.go' -not -name '*_test.go')"
          ],
          "outputs": ["<(PRODUCT_DIR)/libwsbroker.so", "<(PRODUCT_DIR)/libwsbroker.h"],
          "action": [
            "go", "build", "-buildmode=c-shared", "-trimpath",
            "-o", "<(PRODUCT_DIR)/libwsbroker.so", "./cmd/libwsbroker"
          ]
        }
      ]
    },
    {
      "target_name": "wsbroker",
      "dependencies": ["libwsbroker"],
      "sources": ["napi/module.c", "napi/deliver.c", "napi/watch.c"],
      "include_dirs": ["<(PRODUCT_DIR)"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=c11", "-D_GNU_SOURCE"],
      "libraries": ["-L<(PRODUCT_DIR)", "-lwsbroker", "-Wl,-rpath,'$$ORIGIN'"]
    }
  ]
}

// Validates Gateway API objects read as a JSON list on stdin; prints a JSON list of
// error messages (null where valid). Schemas: @kubernetes-models/gateway-api,
// generated from the Gateway API CRDs' openAPIV3Schema.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

const kinds = { "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute };
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((doc) => {
  const model = kinds[`${doc.apiVersion}/${doc.kind}`];
  if (!model) return `no schema for ${doc.apiVersion} ${doc.kind}`;
  try {
    new model(doc).validate();
    return null;
  } catch (e) {
    return e.message;
  }
});
process.stdout.write(JSON.stringify(results));

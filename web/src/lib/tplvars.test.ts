import { describe, expect, it } from 'vitest';
import { templateVariables } from './tplvars';

describe('templateVariables', () => {
  it('reads HCL variable blocks', () => {
    const src = `# comment with variable "nope" {
variable "web_count" {
  description = "How many web machines to run."
  type        = number
  default     = 1
}

variable "name" {
  default = "a } brace" # trailing comment
  validation {
    condition = length(var.name) > 0
    error_message = "}"
  }
}
variable "password" {
  sensitive = true
}
variable "kloud_region" {}
resource "sandbox_machine" "web" { name = "x" }
`;
    expect(templateVariables(src, 'hcl')).toEqual([
      { name: 'web_count', description: 'How many web machines to run.', type: 'number', default: '1', sensitive: false },
      { name: 'name', default: 'a } brace', sensitive: false },
      { name: 'password', sensitive: true },
    ]);
  });
  it('reads JSON templates, both shapes', () => {
    const obj = JSON.stringify({ variable: { size: { default: 'small', description: 'd' }, n: { type: 'number', default: 2 } } });
    expect(templateVariables(obj, 'json')).toEqual([
      { name: 'size', default: 'small', description: 'd', sensitive: false },
      { name: 'n', type: 'number', default: '2', sensitive: false },
    ]);
    const arr = JSON.stringify({ variable: [{ a: {} }, { kloud_x: {} }] });
    expect(templateVariables(arr, 'json')).toEqual([{ name: 'a', sensitive: false }]);
  });
  it('finds nothing in what is not a template', () => {
    expect(templateVariables('{not json', 'json')).toEqual([]);
    expect(templateVariables('variable "x" {', 'hcl')).toEqual([{ name: 'x', sensitive: false }]);
    expect(templateVariables('', 'hcl')).toEqual([]);
  });
});
